//! Lines on stdout for tools whose reader may go away (`| head`, `| grep -m1`, `| jq`): a closed
//! pipe ends the tool quietly instead of panicking in `println!`.

use std::io::Write;

/// Whether stdout still has a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Open,
    Closed,
}

impl Written {
    pub fn is_closed(self) -> bool {
        self == Written::Closed
    }
}

/// stdout, remembering once its reader went away.
#[derive(Default)]
pub struct Stdout {
    closed: bool,
}

impl Stdout {
    /// Writes one line and flushes it, so a pipeline sees each record as it comes.
    pub fn line(&mut self, text: &str) -> Written {
        if self.closed {
            return Written::Closed;
        }
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => Written::Open,
            // EPIPE above all; any other failure to write stdout ends the output the same way.
            Err(_) => {
                self.closed = true;
                Written::Closed
            }
        }
    }
}
