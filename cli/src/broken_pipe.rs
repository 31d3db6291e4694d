//! A reader that goes away (`runicorn-hub ls | head`) closes the pipe under stdout; the write
//! that follows fails with `BrokenPipe`. That is not a failure of the command: both binaries
//! exit 0 quietly when [`is_broken_pipe`] says so.

use std::io::ErrorKind;

/// True when any cause in `err`'s chain is a broken pipe, as an I/O error or as the I/O error
/// inside a `serde_json` error (writing JSON to a closed stdout).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use anyhow::Context;

    use super::*;

    /// A writer whose reader has gone.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_is_found_under_context() {
        let err = writeln!(ClosedPipe, "row")
            .context("writing the listing")
            .context("ls")
            .unwrap_err();
        assert!(is_broken_pipe(&err));
    }

    #[test]
    fn a_broken_pipe_inside_a_json_error_is_found() {
        let json = serde_json::to_writer(ClosedPipe, &[1, 2, 3]).unwrap_err();
        let err = anyhow::Error::new(json).context("writing the listing");
        assert!(is_broken_pipe(&err));
    }

    #[test]
    fn other_errors_are_not_broken_pipes() {
        let io = anyhow::Error::new(std::io::Error::from(ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&io));
        assert!(!is_broken_pipe(&anyhow::anyhow!("broken pipe")));
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(!is_broken_pipe(&anyhow::Error::new(json)));
    }
}
