//! A runtime's log kept in a file (the process backend's `agent.log`): its
//! last lines, then what is appended, read by polling its size (no file
//! watcher: a log grows slowly, and a quarter second is soon enough).

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::LogStream;

/// How much of the file's end is read to find its last lines, at most.
const TAIL_WINDOW: u64 = 4 * 1024 * 1024;
/// How often a followed file is looked at for more.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// Bytes sent in one piece while following, at most.
const CHUNK: usize = 64 * 1024;

/// The last `tail` lines of `path`, then (with `follow`) what is appended
/// to it. `None` when there is no such file.
pub(super) async fn read(path: PathBuf, tail: usize, follow: bool) -> std::io::Result<Option<LogStream>> {
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let end = file.metadata().await?.len();
    let start = end.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start)).await?;
    let mut window = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    (&mut file).take(end - start).read_to_end(&mut window).await?;
    let first = Bytes::from(last_lines(&window, tail, start > 0).to_vec());
    let head = futures_util::stream::once(async move { Ok(first) });
    if !follow {
        return Ok(Some(Box::pin(head)));
    }
    let more = futures_util::stream::unfold((file, end), |(mut file, mut at)| async move {
        loop {
            let len = match file.metadata().await {
                Ok(metadata) => metadata.len(),
                Err(error) => return Some((Err(error), (file, at))),
            };
            if len < at {
                // Truncated (rotated by hand): start again from its beginning.
                at = 0;
            }
            if len > at {
                let mut chunk = vec![0; usize::try_from(len - at).unwrap_or(CHUNK).min(CHUNK)];
                let read = async {
                    file.seek(SeekFrom::Start(at)).await?;
                    file.read(&mut chunk).await
                };
                return match read.await {
                    Ok(n) => {
                        chunk.truncate(n);
                        Some((Ok(Bytes::from(chunk)), (file, at + n as u64)))
                    }
                    Err(error) => Some((Err(error), (file, at))),
                };
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    });
    Ok(Some(Box::pin(futures_util::StreamExt::chain(head, more))))
}

/// The last `n` lines of `text`. `cut`: `text` starts mid-file, so its first
/// (partial) line is never one of them.
fn last_lines(text: &[u8], n: usize, cut: bool) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, byte) in body.iter().enumerate().rev() {
        if *byte == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    if cut {
        match text.iter().position(|b| *b == b'\n') {
            Some(i) => &text[i + 1..],
            None => &[],
        }
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

    use futures_util::StreamExt;

    use super::*;

    #[test]
    fn the_last_lines_are_whole_lines() {
        let text = b"one\ntwo\nthree\n";
        assert_eq!(last_lines(text, 2, false), b"two\nthree\n");
        assert_eq!(last_lines(text, 5, false), text);
        assert_eq!(last_lines(text, 0, false), b"");
        assert_eq!(last_lines(b"one\ntwo", 1, false), b"two", "a last line without its newline");
        assert_eq!(last_lines(b"partial\nwhole\n", 5, true), b"whole\n", "a cut first line is dropped");
    }

    #[tokio::test]
    async fn a_followed_log_yields_what_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        assert!(read(path.clone(), 10, false).await.unwrap().is_none(), "no file, no log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let mut tail = read(path.clone(), 2, false).await.unwrap().unwrap();
        assert_eq!(tail.next().await.unwrap().unwrap(), "b\nc\n");
        assert!(tail.next().await.is_none(), "without follow it ends");

        let mut followed = read(path.clone(), 1, true).await.unwrap().unwrap();
        assert_eq!(followed.next().await.unwrap().unwrap(), "c\n");
        use std::io::Write as _;
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"d\n").unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), followed.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(next, "d\n");
    }
}
