//! How many items go in one message: the limit every batching leader shares
//! (raft's AppendEntries, zab's PROPOSAL), etcd's `limitSize`.

/// The length of the longest prefix of `sizes` (approximate bytes per item)
/// that holds at most `count_max` items and at most `bytes_max` bytes, except
/// that the first item always goes, however large: an item over the limit
/// travels alone instead of never. 0 only when `sizes` is empty.
pub(crate) fn fit(sizes: impl IntoIterator<Item = usize>, count_max: usize, bytes_max: usize) -> usize {
    let mut bytes: usize = 0;
    let mut len = 0;
    for size in sizes.into_iter().take(count_max) {
        bytes = bytes.saturating_add(size);
        if len > 0 && bytes > bytes_max {
            break;
        }
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fits_by_count_and_bytes_and_always_takes_the_first() {
        assert_eq!(fit([10, 10, 10, 10], 64, 30), 3, "exactly at the byte limit");
        assert_eq!(fit([10, 10, 10, 10], 64, 29), 2);
        assert_eq!(fit([10, 10, 10, 10], 2, usize::MAX), 2, "the count limit");
        assert_eq!(fit([100, 1, 1], 64, 50), 1, "an oversized first item goes alone");
        assert_eq!(fit([1, 100, 1], 64, 50), 1, "and stops what follows");
        assert_eq!(fit([usize::MAX, usize::MAX], 64, usize::MAX - 1), 1, "sums saturate");
        assert_eq!(fit([], 64, 50), 0);
    }
}
