import { describe, expect, it } from "vitest";
import type { RunFile } from "../../src/api";
import { baseName, buildFileTree, previewKind } from "../../src/pages/run_files";

const file = (path: string, size = 1, cached = false): RunFile => ({
  path,
  size,
  mtime: 0,
  sha256: null,
  cached,
  url: `/api/runs/1/files/${path}`,
});

describe("run files", () => {
  it("builds folders with counts and sizes, sorted by name", () => {
    const root = buildFileTree([
      file("meta.json", 10),
      file("ckpt/b.pt", 100),
      file("ckpt/a.pt", 200),
      file("media/img/x.png", 5),
      file("ckpt.txt", 1),
      file("media/y.png", 7),
    ]);
    expect(root.count).toBe(6);
    expect(root.size).toBe(323);
    expect(root.files.map((f) => f.path)).toEqual(["ckpt.txt", "meta.json"]);
    expect(root.folders.map((f) => f.path)).toEqual(["ckpt", "media"]);
    const [ckpt, media] = root.folders;
    expect(ckpt.files.map((f) => f.path)).toEqual(["ckpt/a.pt", "ckpt/b.pt"]);
    expect([ckpt.count, ckpt.size]).toEqual([2, 300]);
    expect([media.count, media.size]).toEqual([2, 12]);
    expect(media.files.map((f) => f.path)).toEqual(["media/y.png"]);
    expect(media.folders.map((f) => [f.name, f.path, f.count])).toEqual([["img", "media/img", 1]]);
  });

  it("keeps names that look like markup or paths as they are", () => {
    const root = buildFileTree([file("<b>x<i>/a&b.txt")]);
    expect(root.folders[0].name).toBe("<b>x<i>");
    expect(baseName(root.folders[0].files[0].path)).toBe("a&b.txt");
  });

  it("is empty for no files", () => {
    expect(buildFileTree([])).toEqual({ name: "", path: "", folders: [], files: [], count: 0, size: 0 });
  });

  it("opens images and text, offers the rest for download", () => {
    expect(previewKind("media/a.PNG")).toBe("image");
    expect(previewKind("logs.txt")).toBe("text");
    expect(previewKind("meta.json")).toBe("text");
    expect(previewKind("events.jsonl")).toBe("text");
    expect(previewKind("ckpt/model.pt")).toBe("none");
  });
});
