//! The path tree of `GET /api/paths`, built from the store's run count per path: one node per
//! path segment, each counting its own runs and its children's.

use serde::Serialize;

/// One node of the path tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathNode {
    pub name: String,
    pub path: String,
    pub count: u64,
    pub children: Vec<PathNode>,
}

impl PathNode {
    fn new(name: &str, path: String) -> PathNode {
        PathNode {
            name: name.to_owned(),
            path,
            count: 0,
            children: Vec::new(),
        }
    }
}

/// Builds the tree (children sorted by name) from `(path, runs)` pairs; the root is the empty
/// path and counts every run.
pub fn build_tree(counts: &[(String, u64)]) -> PathNode {
    let mut root = PathNode::new("", String::new());
    for (path, n) in counts {
        root.count += n;
        let mut node = &mut root;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let idx = match node.children.iter().position(|c| c.name == segment) {
                Some(i) => i,
                None => {
                    let child_path = if node.path.is_empty() {
                        segment.to_owned()
                    } else {
                        format!("{}/{segment}", node.path)
                    };
                    node.children.push(PathNode::new(segment, child_path));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[idx];
            node.count += n;
        }
    }
    sort(&mut root);
    root
}

fn sort(node: &mut PathNode) {
    node.children.sort_by(|a, b| a.name.cmp(&b.name));
    node.children.iter_mut().for_each(sort);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_include_children() {
        let tree = build_tree(&[
            ("cv/resnet50".into(), 3),
            ("cv".into(), 1),
            ("nlp/bert/base".into(), 2),
            ("".into(), 4),
        ]);
        assert_eq!(tree.count, 10);
        assert_eq!(tree.children.len(), 2);
        let cv = &tree.children[0];
        assert_eq!(
            (cv.name.as_str(), cv.path.as_str(), cv.count),
            ("cv", "cv", 4)
        );
        assert_eq!(cv.children[0].path, "cv/resnet50");
        assert_eq!(cv.children[0].count, 3);
        let nlp = &tree.children[1];
        assert_eq!(nlp.count, 2);
        assert_eq!(nlp.children[0].children[0].path, "nlp/bert/base");
        assert!(nlp.children[0].children[0].children.is_empty());
    }

    #[test]
    fn an_empty_store_is_an_empty_root() {
        let tree = build_tree(&[]);
        assert_eq!(tree.count, 0);
        assert!(tree.children.is_empty());
    }
}
