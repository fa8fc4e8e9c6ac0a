//! Arbitrary bytes into both RESP2 parsers. Beyond "never panics", three
//! oracles: a command fed in two pieces through `CommandDecoder` parses as it
//! does whole; a parsed command re-encodes to the same arguments; a parsed
//! reply re-encodes to bytes that parse back to the same value, and every
//! proper prefix of it asks for more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quorum_resp::codec::{encode, encode_command, parse_command, parse_value, CommandDecoder, Limits};

fuzz_target!(|data: &[u8]| {
    let tiny = Limits { max_bulk: 64, max_args: 8, max_inline: 64, max_command: 256, max_depth: 4 };
    let split = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    for limits in [Limits::default(), tiny] {
        check_command(data, split, &limits);
        check_value(data, split, &limits);
    }
});

fn check_command(data: &[u8], split: usize, limits: &Limits) {
    let whole = parse_command(data, limits);
    let mut decoder = CommandDecoder::new();
    match decoder.decode(&data[..split], limits) {
        Ok(None) => assert_eq!(decoder.decode(data, limits), whole, "two pieces differ from one"),
        early => assert_eq!(early, whole, "a prefix decided differently from the whole"),
    }
    if let Ok(Some((args, _))) = &whole {
        if !args.is_empty() {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut out = Vec::new();
            encode_command(&refs, &mut out);
            let relaxed = Limits { max_inline: usize::MAX / 2, ..limits.clone() };
            assert_eq!(parse_command(&out, &relaxed), Ok(Some((args.clone(), out.len()))));
        }
    }
}

fn check_value(data: &[u8], split: usize, limits: &Limits) {
    let Ok(Some((value, used))) = parse_value(data, limits) else { return };
    assert!(used > 0 && used <= data.len());
    assert_eq!(parse_value(&data[..split % used], limits), Ok(None), "a proper prefix is complete");
    let mut out = Vec::new();
    encode(&value, &mut out);
    // Lossy UTF-8 decoding can triple a line's length, hence the relaxed limit.
    let relaxed = Limits { max_inline: limits.max_inline.saturating_mul(4), ..limits.clone() };
    assert_eq!(parse_value(&out, &relaxed), Ok(Some((value, out.len()))));
}
