//! The RESP2 codec against hand-written cases (every error path, Redis'
//! inline quoting), incremental feeding, and properties over arbitrary input.

use proptest::prelude::*;
use quorum_resp::codec::{
    encode, encode_array_header, encode_bulk, encode_command, encode_error, encode_int, encode_null_bulk,
    encode_ok, encode_simple, parse_command, parse_value, split_args, CommandDecoder, Limits, Parsed,
    ProtocolError, ShownByte, Value,
};

fn limits() -> Limits {
    Limits::default()
}

fn command(buf: &[u8]) -> Parsed<Vec<Vec<u8>>> {
    parse_command(buf, &limits())
}

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|word| word.as_bytes().to_vec()).collect()
}

fn encoded(words: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_command(words, &mut out);
    out
}

/// Feed `input` one byte at a time through a decoder, as a server reading one
/// byte per syscall would, collecting every command until the first error.
fn feed_bytewise(input: &[u8], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
    let mut decoder = CommandDecoder::new();
    let mut buffer = Vec::new();
    let mut commands = Vec::new();
    for &byte in input {
        buffer.push(byte);
        loop {
            match decoder.decode(&buffer, limits) {
                Ok(None) => break,
                Ok(Some((args, used))) => {
                    commands.push(args);
                    buffer.drain(..used);
                }
                Err(error) => return (commands, Some(error)),
            }
        }
    }
    (commands, None)
}

/// Parse `input` whole, command after command, until it needs more or fails.
fn parse_all(input: &[u8], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
    let mut at = 0;
    let mut commands = Vec::new();
    loop {
        match parse_command(&input[at..], limits) {
            Ok(None) => return (commands, None),
            Ok(Some((args, used))) => {
                assert!(used > 0, "a parsed command consumes bytes");
                commands.push(args);
                at += used;
            }
            Err(error) => return (commands, Some(error)),
        }
    }
}

#[test]
fn multibulk_command_parses_and_reports_its_length() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n";
    let (first, used) = command(input).unwrap().unwrap();
    assert_eq!(first, args(&["SET", "k", "hello"]));
    assert_eq!(used, 31);
    let (second, rest) = command(&input[used..]).unwrap().unwrap();
    assert_eq!(second, args(&["PING"]));
    assert_eq!(used + rest, input.len());
}

#[test]
fn bulk_arguments_are_binary_safe() {
    let key: &[u8] = b"k\0\r\n\x00\xff";
    let value: &[u8] = b"\r\n\r\n$3\r\n*1\r\n";
    let (parsed, used) = command(&encoded(&[b"SET", key, value])).unwrap().unwrap();
    assert_eq!(parsed, vec![b"SET".to_vec(), key.to_vec(), value.to_vec()]);
    assert_eq!(used, encoded(&[b"SET", key, value]).len());
    assert_eq!(command(&encoded(&[b""])).unwrap().unwrap().0, vec![Vec::<u8>::new()]);
}

#[test]
fn every_proper_prefix_of_a_command_needs_more() {
    let input = encoded(&[b"SET", b"key", b"a value with \r\n inside"]);
    for cut in 0..input.len() {
        assert_eq!(command(&input[..cut]).unwrap(), None, "prefix of {cut} bytes");
    }
    let inline = b"SET \"a b\" c\r\n";
    for cut in 0..inline.len() {
        assert_eq!(command(&inline[..cut]).unwrap(), None, "inline prefix of {cut} bytes");
    }
}

#[test]
fn inline_commands_split_like_redis() {
    let cases: &[(&[u8], &[&str])] = &[
        (b"PING\r\n", &["PING"]),
        (b"PING\n", &["PING"]),
        (b"  SET   k\tv  \r\n", &["SET", "k", "v"]),
        (b"SET \"a b\" 'c d'\r\n", &["SET", "a b", "c d"]),
        (b"SET k \"\\x41\\x4a\\n\\r\\t\\\\\\\"\"\r\n", &["SET", "k", "AJ\n\r\t\\\""]),
        (b"SET k \"\\xZZ\"\r\n", &["SET", "k", "xZZ"]),
        (b"SET 'it\\'s' 'a\\nb'\r\n", &["SET", "it's", "a\\nb"]),
        (b"SET a\"b c\" d\r\n", &["SET", "ab c", "d"]),
        (b"ECHO \"\"\r\n", &["ECHO", ""]),
    ];
    for (input, expected) in cases {
        let (parsed, used) = command(input).unwrap().unwrap_or_else(|| panic!("{input:?} is complete"));
        assert_eq!(parsed, args(expected), "{}", String::from_utf8_lossy(input));
        assert_eq!(used, input.len());
    }
    assert_eq!(split_args(b"\"\\b\\a\"").unwrap(), vec![vec![0x08, 0x07]]);
}

#[test]
fn empty_commands_are_consumed_with_no_arguments() {
    for input in [&b"\r\n"[..], b"\n", b"   \r\n", b"*0\r\n", b"*-1\r\n"] {
        let (parsed, used) = command(input).unwrap().unwrap();
        assert!(parsed.is_empty(), "{input:?}");
        assert_eq!(used, input.len(), "{input:?}");
    }
}

#[test]
fn command_errors_have_redis_messages() {
    let cases: &[(&[u8], ProtocolError, &str)] = &[
        (b"*x\r\n", ProtocolError::InvalidMultibulkLength, "Protocol error: invalid multibulk length"),
        (b"*1x\r\n", ProtocolError::InvalidMultibulkLength, "Protocol error: invalid multibulk length"),
        (
            b"*2\n$1\r\na\r\n",
            ProtocolError::InvalidMultibulkLength,
            "Protocol error: invalid multibulk length",
        ),
        (b"*1048577\r\n", ProtocolError::InvalidMultibulkLength, "Protocol error: invalid multibulk length"),
        (
            b"*99999999999999999999\r\n",
            ProtocolError::InvalidMultibulkLength,
            "Protocol error: invalid multibulk length",
        ),
        (
            b"*1\r\n:1\r\n",
            ProtocolError::ExpectedBulk(ShownByte(b':')),
            "Protocol error: expected '$', got ':'",
        ),
        (
            b"*1\r\n\r\n",
            ProtocolError::ExpectedBulk(ShownByte(b'\r')),
            "Protocol error: expected '$', got '\\x0d'",
        ),
        (b"*1\r\n$-1\r\n", ProtocolError::InvalidBulkLength, "Protocol error: invalid bulk length"),
        (b"*1\r\n$abc\r\n", ProtocolError::InvalidBulkLength, "Protocol error: invalid bulk length"),
        (b"*1\r\n$\r\n", ProtocolError::InvalidBulkLength, "Protocol error: invalid bulk length"),
        (b"*1\r\n$67108865\r\n", ProtocolError::InvalidBulkLength, "Protocol error: invalid bulk length"),
        (
            b"*1\r\n$3\r\nabcde",
            ProtocolError::MissingBulkTerminator,
            "Protocol error: expected CRLF after bulk data",
        ),
        (b"SET \"abc\r\n", ProtocolError::UnbalancedQuotes, "Protocol error: unbalanced quotes in request"),
        (b"SET 'abc\r\n", ProtocolError::UnbalancedQuotes, "Protocol error: unbalanced quotes in request"),
        (b"SET \"a\"b\r\n", ProtocolError::UnbalancedQuotes, "Protocol error: unbalanced quotes in request"),
        (b"SET 'a'b\r\n", ProtocolError::UnbalancedQuotes, "Protocol error: unbalanced quotes in request"),
        (b"SET \"ab\\\r\n", ProtocolError::UnbalancedQuotes, "Protocol error: unbalanced quotes in request"),
    ];
    for (input, error, message) in cases {
        assert_eq!(command(input).as_ref(), Err(error), "{}", String::from_utf8_lossy(input));
        assert_eq!(error.to_string(), *message);
    }
}

#[test]
fn oversized_requests_are_errors_before_they_complete() {
    let limits = limits();
    let long = vec![b'a'; limits.max_inline + 2];
    assert_eq!(command(&long), Err(ProtocolError::InlineTooBig));
    let mut long_line = vec![b'a'; limits.max_inline + 1];
    long_line.extend_from_slice(b"\r\n");
    assert_eq!(command(&long_line), Err(ProtocolError::InlineTooBig));
    // Exactly at the limit is fine, with or without its \r yet.
    let mut at_limit = vec![b'a'; limits.max_inline];
    assert_eq!(command(&at_limit), Ok(None));
    at_limit.push(b'\r');
    assert_eq!(command(&at_limit), Ok(None));
    at_limit.push(b'\n');
    assert_eq!(command(&at_limit).unwrap().unwrap().0.len(), 1);

    let mut count = b"*".to_vec();
    count.extend(vec![b'1'; limits.max_inline + 2]);
    assert_eq!(command(&count), Err(ProtocolError::MultibulkCountTooBig));
    assert_eq!(ProtocolError::MultibulkCountTooBig.to_string(), "Protocol error: too big mbulk count string");
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend(vec![b'1'; limits.max_inline + 2]);
    assert_eq!(command(&bulk), Err(ProtocolError::BulkCountTooBig));
    assert_eq!(ProtocolError::BulkCountTooBig.to_string(), "Protocol error: too big bulk count string");
    // A declared bulk over the limit fails on its header, before any payload.
    let small = Limits { max_bulk: 10, max_args: 2, max_inline: 16, max_command: 1024, max_depth: 2 };
    assert_eq!(parse_command(b"*1\r\n$11\r\n", &small), Err(ProtocolError::InvalidBulkLength));
    assert_eq!(parse_command(b"*3\r\n", &small), Err(ProtocolError::InvalidMultibulkLength));
    assert_eq!(parse_command(b"a b c\r\n", &small), Err(ProtocolError::InvalidMultibulkLength));
    assert!(parse_command(b"*2\r\n$10\r\n0123456789\r\n$0\r\n\r\n", &small).unwrap().is_some());
    // Arguments each under the bulk limit but over the command limit together:
    // refused as the length that passes it is declared, its payload unsent.
    let capped = Limits { max_bulk: 10, max_args: 4, max_inline: 16, max_command: 25, max_depth: 2 };
    let mut decoder = CommandDecoder::new();
    let mut input = b"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n".to_vec();
    assert_eq!(decoder.decode(&input, &capped), Ok(None));
    input.extend_from_slice(b"$6\r\n");
    assert_eq!(decoder.decode(&input, &capped), Err(ProtocolError::CommandTooBig(25)));
    assert_eq!(ProtocolError::CommandTooBig(25).to_string(), "Protocol error: command larger than 25 bytes");
    // Exactly at the limit is fine.
    let at_limit = b"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$5\r\n01234\r\n";
    assert!(parse_command(at_limit, &capped).unwrap().is_some());
}

#[test]
fn bytewise_feeding_equals_one_shot_parsing() {
    let mut input = Vec::new();
    input.extend(encoded(&[b"SET", b"k\r\n", b"v"]));
    input.extend_from_slice(b"PING\r\nSET 'a b' \"c\\x00\"\n\r\n*0\r\n");
    input.extend(encoded(&[b"GET", b""]));
    input.extend_from_slice(b"*1\r\n:oops\r\n");
    let one_shot = parse_all(&input, &limits());
    assert_eq!(one_shot.0.len(), 6);
    assert_eq!(one_shot.1, Some(ProtocolError::ExpectedBulk(ShownByte(b':'))));
    assert_eq!(feed_bytewise(&input, &limits()), one_shot);
}

#[test]
fn large_bulk_in_small_reads_completes() {
    // 8 MiB in 4 KiB reads: 2,048 decode calls. Each "need more" call must
    // compare lengths, not copy; this would take minutes if it were quadratic.
    let payload = vec![b'x'; 8 * 1024 * 1024];
    let input = encoded(&[b"SET", b"big", &payload]);
    let mut decoder = CommandDecoder::new();
    let mut calls = 0;
    let mut result = None;
    for end in (4096..input.len() + 4096).step_by(4096) {
        calls += 1;
        if let Some(done) = decoder.decode(&input[..end.min(input.len())], &limits()).unwrap() {
            result = Some(done);
            break;
        }
    }
    let (args, used) = result.expect("the command completes");
    assert_eq!(used, input.len());
    assert_eq!(args[2].len(), payload.len());
    assert!(calls > 2000);
}

#[test]
fn many_small_arguments_in_small_reads_complete() {
    let words: Vec<Vec<u8>> = (0..100_000).map(|i| format!("k{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
    let input = encoded(&refs);
    let mut decoder = CommandDecoder::new();
    let mut done = None;
    for end in (512..input.len() + 512).step_by(512) {
        if let Some(parsed) = decoder.decode(&input[..end.min(input.len())], &limits()).unwrap() {
            done = Some(parsed);
            break;
        }
    }
    assert_eq!(done.unwrap().0, words);
}

#[test]
fn decoder_survives_a_buffer_it_was_not_promised() {
    let mut decoder = CommandDecoder::new();
    let input = encoded(&[b"SET", b"key", b"value"]);
    assert_eq!(decoder.decode(&input[..20], &limits()).unwrap(), None);
    // The caller breaks the contract: a shorter, different buffer.
    assert_eq!(decoder.decode(b"*1\r\n", &limits()).unwrap(), None);
    assert_eq!(decoder.decode(b"*1\r\n$4\r\nPING\r\n", &limits()).unwrap().unwrap().0, args(&["PING"]));
    decoder.reset();
    assert_eq!(decoder.decode(&input, &limits()).unwrap().unwrap().0, args(&["SET", "key", "value"]));
}

#[test]
fn replies_of_every_kind_parse() {
    let cases: Vec<(&[u8], Value)> = vec![
        (b"+OK\r\n", Value::Simple("OK".into())),
        (b"-ERR wrong\r\n", Value::Error("ERR wrong".into())),
        (b":-42\r\n", Value::Integer(-42)),
        (b":-9223372036854775808\r\n", Value::Integer(i64::MIN)),
        (b"$3\r\na\r\n\r\n", Value::bulk(&b"a\r\n"[..])),
        (b"$0\r\n\r\n", Value::bulk(Vec::new())),
        (b"$-1\r\n", Value::Bulk(None)),
        (b"*-1\r\n", Value::Array(None)),
        (b"*0\r\n", Value::Array(Some(vec![]))),
        (
            b"*2\r\n:1\r\n*1\r\n$-1\r\n",
            Value::Array(Some(vec![Value::Integer(1), Value::Array(Some(vec![Value::Bulk(None)]))])),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_value(input, &limits()).unwrap(), Some((expected, input.len())), "{input:?}");
        for cut in 0..input.len() {
            assert_eq!(parse_value(&input[..cut], &limits()).unwrap(), None, "{input:?} cut at {cut}");
        }
    }
}

#[test]
fn reply_errors_are_errors() {
    let small = Limits { max_bulk: 4, max_args: 2, max_inline: 8, max_command: 1024, max_depth: 3 };
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"?x\r\n", ProtocolError::InvalidType(ShownByte(b'?'))),
        (b":1.5\r\n", ProtocolError::InvalidInteger),
        (b":\r\n", ProtocolError::InvalidInteger),
        (b"+OK\n", ProtocolError::InvalidLine),
        (b"+O\rK\r\n", ProtocolError::InvalidLine),
        (b"+1234567890", ProtocolError::InvalidLine),
        (b"$5\r\n", ProtocolError::InvalidBulkLength),
        (b"$-2\r\n", ProtocolError::InvalidBulkLength),
        (b"$2\r\nabcd", ProtocolError::MissingBulkTerminator),
        (b"*3\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*-2\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*1\r\n*1\r\n*1\r\n*1\r\n", ProtocolError::TooDeep(3)),
        (b"*1\r\n*1\r\n?", ProtocolError::InvalidType(ShownByte(b'?'))),
    ];
    for (input, error) in cases {
        assert_eq!(parse_value(input, &small).as_ref(), Err(error), "{}", String::from_utf8_lossy(input));
    }
    assert_eq!(parse_value(b":9223372036854775808\r\n", &limits()), Err(ProtocolError::InvalidInteger));
    assert_eq!(parse_value(b":-9223372036854775809\r\n", &limits()), Err(ProtocolError::InvalidInteger));
    assert_eq!(ProtocolError::TooDeep(3).to_string(), "Protocol error: arrays nested deeper than 3");
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let input = b"*1\r\n".repeat(1_000_000);
    assert_eq!(parse_value(&input, &limits()), Err(ProtocolError::TooDeep(128)));
}

#[test]
fn encoders_write_exact_bytes() {
    let mut out = Vec::new();
    encode_ok(&mut out);
    encode_simple("PONG", &mut out);
    encode_error("ERR bad\r\nthing", &mut out);
    encode_int(-7, &mut out);
    encode_bulk(b"a\0b", &mut out);
    encode_null_bulk(&mut out);
    encode_array_header(2, &mut out);
    assert_eq!(out, b"+OK\r\n+PONG\r\n-ERR bad  thing\r\n:-7\r\n$3\r\na\0b\r\n$-1\r\n*2\r\n".to_vec());
    assert_eq!(encoded(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec());
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        "[^\r\n]{0,20}".prop_map(Value::Simple),
        "[^\r\n]{0,20}".prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)).prop_map(Value::Bulk),
        Just(Value::Array(None)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        proptest::collection::vec(inner, 0..8).prop_map(|elements| Value::Array(Some(elements)))
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let tiny = Limits { max_bulk: 16, max_args: 4, max_inline: 16, max_command: 40, max_depth: 3 };
        for limits in [Limits::default(), tiny] {
            let _ = parse_command(&bytes, &limits);
            let _ = parse_value(&bytes, &limits);
            let _ = feed_bytewise(&bytes, &limits);
        }
    }

    #[test]
    fn resp_shaped_bytes_never_panic(parts in proptest::collection::vec(
        proptest::sample::select(vec![&b"*"[..], b"$", b"\r\n", b"\n", b"-1", b"3", b"0", b"\"", b"'",
                                      b"\\x4", b" ", b"+", b":", b"abc"]),
        0..64,
    )) {
        let bytes = parts.concat();
        let tiny = Limits { max_bulk: 16, max_args: 4, max_inline: 16, max_command: 40, max_depth: 3 };
        for limits in [Limits::default(), tiny] {
            let _ = parse_value(&bytes, &limits);
            prop_assert_eq!(feed_bytewise(&bytes, &limits), parse_all(&bytes, &limits));
        }
    }

    #[test]
    fn encode_then_parse_is_identity(value in value_strategy(), trailing in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut out = Vec::new();
        encode(&value, &mut out);
        let length = out.len();
        out.extend(trailing);
        prop_assert_eq!(parse_value(&out, &Limits::default()).unwrap(), Some((value, length)));
    }

    #[test]
    fn encoded_commands_parse_back(commands in proptest::collection::vec(
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..6), 1..5,
    )) {
        let mut input = Vec::new();
        for command in &commands {
            let refs: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            encode_command(&refs, &mut input);
        }
        prop_assert_eq!(parse_all(&input, &Limits::default()), (commands.clone(), None));
        prop_assert_eq!(feed_bytewise(&input, &Limits::default()), (commands, None));
    }

    #[test]
    fn bytewise_equals_one_shot_on_arbitrary_bytes(
        prefix in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..3),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut input = Vec::new();
        for command in &prefix {
            encode_command(&[command.as_slice()], &mut input);
        }
        input.extend(noise);
        let small = Limits { max_bulk: 8, max_args: 3, max_inline: 10, max_command: 20, max_depth: 3 };
        for limits in [Limits::default(), small] {
            prop_assert_eq!(feed_bytewise(&input, &limits), parse_all(&input, &limits));
        }
    }
}
