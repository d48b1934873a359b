//! A small seeded generator (SplitMix64) and the id formats of the device.
//!
//! The demo must be byte-identical for a given seed on every machine and every version of
//! the toolchain, so it uses its own generator rather than a crate whose algorithm may change.
//! Each part of the dump draws from its own stream (derived from the seed and a stream
//! number), so adding a special case does not shift the ids of the ordinary tree.

/// The device's base32 alphabet for ids and contentIDs: `a-z` then `2-7`.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// SplitMix64's output function: a strong 64-bit mixer.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    #[cfg(test)]
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for one part of the dump.
    pub(crate) fn stream(seed: u64, stream: u64) -> Rng {
        Rng(mix64(seed ^ mix64(stream.wrapping_add(0x5eed))))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (the bias is far below what matters here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal deviate (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `len` characters of the base32 alphabet.
    pub(crate) fn base32(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        let mut bits = 0u64;
        let mut left = 0;
        for _ in 0..len {
            if left < 5 {
                bits = self.next_u64();
                left = 64;
            }
            s.push(BASE32[(bits & 31) as usize] as char);
            bits >>= 5;
            left -= 5;
        }
        s
    }

    /// 120 random bits: an ordinary row id in compact form (see [`id24`]).
    pub(crate) fn id_bits(&mut self) -> u128 {
        let lo = u128::from(self.next_u64());
        let hi = u128::from(self.next_u64() >> 8);
        lo | (hi << 64)
    }

    /// An ordinary row id: 24 base32 characters.
    pub(crate) fn row_id(&mut self) -> String {
        id24(self.id_bits())
    }

    /// A root row id (user roots, Trash): 40 base32 characters.
    pub(crate) fn root_id(&mut self) -> String {
        self.base32(40)
    }

    /// A contentID: 32 base32 characters; the first one picks one of the 32 shard folders.
    pub(crate) fn content_id(&mut self) -> String {
        self.base32(32)
    }

    /// `bytes` random bytes as lowercase hex.
    pub(crate) fn hex(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes * 2);
        for _ in 0..bytes.div_ceil(8) {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(bytes * 2);
        s
    }
}

/// Renders 120 bits as a 24-character base32 id.
pub(crate) fn id24(bits: u128) -> String {
    (0..24)
        .map(|i| BASE32[((bits >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The byte stream of one object: xorshift64* keyed by the object's key, written as
/// little-endian u64s. Cheap enough to fill hundreds of megabytes per second per core.
pub(crate) struct ByteStream(u64);

impl ByteStream {
    pub(crate) fn new(key: u64) -> ByteStream {
        // xorshift must not start at zero; mixing makes neighbouring keys unrelated.
        ByteStream(mix64(key) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills `buf` with the next bytes. Only the last call for an object may pass a length
    /// that is not a multiple of 8, so chunking never changes an object's bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let v = self.next().to_le_bytes();
            rest.copy_from_slice(&v[..rest.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_device_shapes() {
        let mut r = Rng::new(7);
        let id = r.row_id();
        assert_eq!(id.len(), 24);
        assert_eq!(r.root_id().len(), 40);
        let c = r.content_id();
        assert_eq!(c.len(), 32);
        for s in [&id, &c] {
            assert!(s.bytes().all(|b| BASE32.contains(&b)), "{s}");
        }
        assert_eq!(r.hex(32).len(), 64);
    }

    #[test]
    fn all_32_shards_are_reachable() {
        let mut r = Rng::new(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            seen.insert(r.content_id().as_bytes()[0]);
        }
        assert_eq!(seen.len(), 32);
    }

    #[test]
    fn byte_stream_does_not_depend_on_chunking() {
        let mut whole = vec![0u8; 1003];
        ByteStream::new(42).fill(&mut whole);
        let mut parts = vec![0u8; 1003];
        let mut s = ByteStream::new(42);
        s.fill(&mut parts[..512]);
        s.fill(&mut parts[512..]);
        assert_eq!(whole, parts);
    }

    #[test]
    fn streams_are_independent_and_repeatable() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(1, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::stream(1, 1).next_u64(), Rng::stream(1, 2).next_u64());
        assert_ne!(Rng::stream(1, 1).next_u64(), Rng::stream(2, 1).next_u64());
    }
}
