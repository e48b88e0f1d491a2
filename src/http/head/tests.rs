//! The head parser's tests: every rule of `head.rs`, by the status it gives.
use super::*;

const RULES: HeadRules = HeadRules {
    max_head: 8192,
    underscores: false,
};

fn parse(s: &str) -> Result<Option<Head>, HeadError> {
    // Every head of these tests also checks that the two parsers agree.
    check_agreement(s.as_bytes(), RULES);
    parse_head(s.as_bytes(), RULES)
}

fn status(s: &str) -> u16 {
    match parse(s) {
        Ok(Some(_)) => 200,
        Ok(None) => 0,
        Err(e) => e.status(),
    }
}

/// The fields `FieldLines` finds in `buf`, as text.
fn fields_of(buf: &[u8], h: &Head) -> Vec<(String, String)> {
    h.fields(buf)
        .map(|(n, v)| {
            let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&buf[r]).into_owned();
            (text(n), text(v))
        })
        .collect()
}

#[test]
fn simple_get() {
    let h = parse("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.minor, 1);
    assert_eq!(h.body, BodyKind::None);
    assert_eq!(h.form, TargetForm::Origin);
    assert!(h.keep_alive);
    let buf = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(fields_of(buf, &h), [("Host".into(), "x".into())]);
}

#[test]
fn incomplete_heads_ask_for_more() {
    let full = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
    for cut in 0..full.len() {
        assert!(parse(&full[..cut]).unwrap().is_none(), "cut at {cut}");
    }
    assert_eq!(parse(full).unwrap().unwrap().body, BodyKind::Length(3));
}

#[test]
fn framing_rules() {
    let h = |extra: &str| status(&format!("POST / HTTP/1.1\r\nHost: x\r\n{extra}\r\n"));
    assert_eq!(h("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400);
    assert_eq!(h("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
    assert_eq!(h("Content-Length: 5\r\nContent-Length: 5\r\n"), 200);
    assert_eq!(h("Content-Length: 5, 5\r\n"), 200);
    assert_eq!(h("Content-Length: 5, 6\r\n"), 400);
    assert_eq!(h("Content-Length: , 5\r\n"), 400, "an empty element");
    assert_eq!(h("Content-Length: 5,,5\r\n"), 400, "an empty element");
    assert_eq!(h("Content-Length: 5,\r\n"), 400, "an empty element");
    assert_eq!(
        h("Content-Length: 5\r\nContent-Length: 05\r\n"),
        200,
        "the same decimal value"
    );
    assert_eq!(h("Content-Length: +5\r\n"), 400);
    assert_eq!(h("Content-Length: -1\r\n"), 400);
    assert_eq!(h("Content-Length: 0x10\r\n"), 400);
    assert_eq!(h("Content-Length: 99999999999999999999\r\n"), 400);
    assert_eq!(h("Content-Length: \r\n"), 400);
    assert_eq!(h("Transfer-Encoding: chunked\r\n"), 200);
    assert_eq!(h("Transfer-Encoding: gzip\r\n"), 501);
    assert_eq!(h("Transfer-Encoding: chunked, gzip\r\n"), 400);
    assert_eq!(h("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400);
    assert_eq!(h("Transfer-Encoding: gzip, chunked\r\n"), 501);
    assert_eq!(
        h("Transfer-Encoding: chunked;ext=val\r\n"),
        400,
        "chunked takes no parameters"
    );
    assert_eq!(h("Transfer-Encoding: chunked ; a\r\n"), 400);
    assert_eq!(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

#[test]
fn host_rules() {
    let h = |host: &str| status(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    for ok in [
        "example.com",
        "example.com:8080",
        "127.0.0.1",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "a-b.c_d~e",
        "xn--bcher-kva.example",
        "host:",
    ] {
        assert_eq!(h(ok), 200, "{ok}");
    }
    for bad in [
        "user@host",
        "host/x",
        "a.com, b.com",
        "a.com,b.com",
        "host:80x",
        "[::1",
        "[]",
        "[::1]x",
        "ho st",
        "host?q",
        "host#f",
    ] {
        assert_eq!(h(bad), 400, "{bad}");
    }
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
        400,
        "empty Host, origin-form"
    );
    assert_eq!(
        status("GET http://a/b HTTP/1.1\r\nHost:\r\n\r\n"),
        200,
        "empty Host, absolute-form"
    );
    assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), 200);
}

#[test]
fn request_line_and_version_rules() {
    assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_eq!(status("GET / HTTP/3.1\r\nHost: a\r\n\r\n"), 505);
    assert_eq!(status("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505);
    for bad in [
        "GET /a b HTTP/1.1",
        "GET / HTTP/1",
        "GET / HTTP/01.1",
        "GET / HTTP/ 1.1",
        "GET / http/1.1",
        "GET / HTTP/1.1x",
        "GET / HTTP/1.10",
        "GET  / HTTP/1.1",
        "GET / HTTP/1.1 ",
    ] {
        assert_eq!(status(&format!("{bad}\r\nHost: a\r\n\r\n")), 400, "{bad:?}");
    }
    let h = parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n").unwrap().unwrap();
    assert_eq!(h.minor, 1, "a later minor is served as 1.1");
    assert!(h.keep_alive);
    assert_eq!(fields_of(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", &h).len(), 1);
    assert_eq!(
        status("GET / HTTP/1.9\r\nHost: a\r\n"),
        0,
        "incomplete: wait for the rest"
    );
    let full = "GET / HTTP/1.2\r\nHost: a\r\n\r\n";
    for cut in 0..full.len() {
        assert_eq!(status(&full[..cut]), 0, "a later minor cut at {cut}");
    }
    let full = "GET / HTTP/2.0\r\nHost: a\r\n\r\n";
    for cut in 6..full.len() {
        assert!([0, 505].contains(&status(&full[..cut])), "HTTP/2.0 cut at {cut}");
    }
    assert_eq!(status("GET / HTTP/1.9\r\n\r\n"), 400, "served as 1.1: Host is required");
    for bad in ["/a\x01", "/caf\u{e9}", "/a#frag", "/\x7f"] {
        assert_eq!(
            status(&format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n")),
            400,
            "{bad:?}"
        );
    }
    let long_method = "A".repeat(100 * 1024);
    assert_eq!(status(&long_method), 400, "a method longer than any: 400, not 414");
    assert_eq!(
        status(&format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "A".repeat(33))),
        400
    );
    assert_eq!(
        status(&format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "A".repeat(32))),
        200
    );
}

#[test]
fn asterisk_form() {
    assert_eq!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_eq!(
        parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap().form,
        TargetForm::Asterisk
    );
    assert_eq!(status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("DELETE * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

#[test]
fn bare_lf_is_refused_everywhere_in_the_head() {
    for bad in [
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: y\nZ: w\r\n\r\n",
        "GET / HTTP/1.0\n\n",
        "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\nX_Dropped: b\r\n\r\n",
    ] {
        assert_eq!(status(bad), 400, "{bad:?}");
    }
    assert_eq!(
        status("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        200,
        "a leading empty line is ignored"
    );
}

#[test]
fn underscores_and_singletons() {
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\nX-A: b\r\n\r\n";
    let h = parse_head(buf, RULES).unwrap().unwrap();
    assert_eq!(
        fields_of(buf, &h),
        [("Host".into(), "a".into()), ("X-A".into(), "b".into())],
        "the underscore field is dropped"
    );
    assert_eq!(h.body, BodyKind::None);
    let keep = HeadRules {
        underscores: true,
        ..RULES
    };
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: x\r\n\r\n";
    let h = parse_head(buf, keep).unwrap().unwrap();
    assert_eq!(
        fields_of(buf, &h),
        [("Host".into(), "a".into()), ("Transfer_Encoding".into(), "x".into())],
        "kept when configured"
    );
    assert_eq!(h.body, BodyKind::None, "never read as framing");
    assert_eq!(
        status("POST / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n"),
        400
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nauthorization: b\r\n\r\n"),
        400
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\n\r\n"),
        200
    );
}

#[test]
fn syntax_rules() {
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        400,
        "whitespace before colon"
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  folded\r\n\r\n"),
        400,
        "obs-fold"
    );
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400, "bare CR");
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"),
        400,
        "control byte"
    );
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"), 400, "DEL");
    assert_eq!(status("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03"), 400, "TLS hello");
    assert_eq!(status("GET noslash HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"), 200);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n"), 417);
}

#[test]
fn keep_alive_rules() {
    let ka = |s: &str| parse(s).unwrap().unwrap().keep_alive;
    assert!(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(!ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
    assert!(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!ka(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n"
    ));
}

#[test]
fn limits() {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
    assert_eq!(status(&long_target), 414);
    assert_eq!(status(&format!("GET /{}", "a".repeat(9000))), 414);
    let big_headers = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(9000));
    assert_eq!(status(&big_headers), 431);
    let many: String = (0..70).map(|i| format!("X{i}: v\r\n")).collect();
    assert_eq!(status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")), 431);
}

#[test]
fn the_word_at_a_time_byte_search_agrees_with_a_loop() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for len in 0..40 {
        for pos in 0..len {
            for b in [b'#', b'_', 0x80, 0xff, b'"', 0x7e, 0x22, 0x24] {
                let mut v = vec![b'a'; len];
                v[pos] = b;
                inputs.push(v);
            }
        }
        inputs.push(vec![b'z'; len]);
    }
    for v in inputs {
        for needle in [b'#', b'_'] {
            let want = v.iter().any(|&b| b == needle || b >= 0x80);
            assert_eq!(has_byte_or_non_ascii(&v, needle), want, "{v:?} {needle}");
        }
    }
}

/// The one-pass parser answers `s` itself, with the full parser's head.
fn assert_scan_takes(s: &str) {
    let fast = scan::scan(s.as_bytes(), RULES).unwrap_or_else(|| panic!("deferred {s:?}"));
    assert_eq!(Some(fast), parse_full(s.as_bytes(), RULES).unwrap(), "{s:?}");
}

/// The one-pass parser answers for the heads real clients send, and gives
/// exactly the full parser's head; it leaves everything unusual to it.
#[test]
fn the_one_pass_parser_takes_the_common_heads() {
    let common = [
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        "GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Empty:\r\nX-Pad: \t a b \t\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET http://x/y HTTP/1.1\r\nHost: \r\n\r\n",
        "PUT /p HTTP/1.1\r\nHost: [::1]:80\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    ];
    common.into_iter().for_each(assert_scan_takes);
    let unusual = [
        "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
        "GET /\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: caf\u{e9}\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX_Y: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "GET / HTTP/1.1\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /#f HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    ];
    for s in unusual {
        assert!(scan::scan(s.as_bytes(), RULES).is_none(), "answered {s:?}");
        check_agreement(s.as_bytes(), RULES);
    }
    // Past `max_head` the full parser chooses the status.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
    let small = HeadRules { max_head: 64, ..RULES };
    assert!(scan::scan(long.as_bytes(), small).is_none());
    assert_eq!(parse_head(long.as_bytes(), small).unwrap_err(), HeadError::UriTooLong);
}

/// `Host: ` read in one load (`scan`'s fast path) gives what the name's run
/// and lookup give: the same head, or the same refusal, as the full parser,
/// for the canonical spelling and for every near miss.
#[test]
fn the_host_field_read_in_one_load_agrees_with_the_full_parser() {
    let taken = [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:  x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:8080\r\nAccept: */*\r\n\r\n",
        "GET / HTTP/1.1\r\nAccept: */*\r\nHost: 127.0.0.1:8080\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\nHost: \r\n\r\n",
        "GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHOST:x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\tx\r\n\r\n",
        "GET / HTTP/1.1\r\nHostname: x\r\nHost: x\r\n\r\n",
    ];
    taken.into_iter().for_each(assert_scan_takes);
    let refused_or_deferred = [
        "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x",
        "GET / HTTP/1.1\r\nHost: ",
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: caf\u{e9}\r\n\r\n",
        // Fewer than eight bytes left at a field: the full parser's.
        "GET / HTTP/1.0\r\nA:\r\n\r\n",
    ];
    for s in refused_or_deferred {
        check_agreement(s.as_bytes(), RULES);
        if let Some(fast) = scan::scan(s.as_bytes(), RULES) {
            assert_eq!(Some(fast), parse_full(s.as_bytes(), RULES).unwrap(), "{s:?}");
        }
    }
    assert!(scan::scan(b"GET / HTTP/1.0\r\nA:\r\n\r\n", RULES).is_none());
    assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", RULES).is_err());
    assert!(parse_head(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", RULES).is_err());
    assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x", RULES), Ok(None));
}

/// `token_is` is `eq_ignore_ascii_case` on every token byte, at every
/// length the known names have.
#[test]
fn token_compare_matches_ignore_case() {
    let tokens: Vec<u8> = (0u8..128).filter(|&b| is_tchar(b)).collect();
    for lower in [
        &b"host"[..],
        b"expect",
        b"connection",
        b"content-length",
        b"transfer-encoding",
        b"if-unmodified-since",
        b"te",
    ] {
        for i in 0..lower.len() {
            for &b in &tokens {
                let mut name = lower.to_vec();
                name[i] = b;
                assert_eq!(
                    token_is(&name, lower),
                    name.eq_ignore_ascii_case(lower),
                    "{:?}",
                    String::from_utf8_lossy(&name)
                );
                name.make_ascii_uppercase();
                assert_eq!(token_is(&name, lower), name.eq_ignore_ascii_case(lower));
            }
        }
    }
}

/// The one-pass parser's value search stops at the first byte outside
/// visible ASCII and space wherever it lies in an eight-byte word (a tab
/// inside the value, DEL, obs-text, a bare CR or LF, the CR ending the
/// line), and both parsers give the same answer for each.
#[test]
fn field_values_agree_with_an_odd_byte_at_every_offset() {
    for len in 0..20 {
        for pos in 0..=len {
            for odd in [b'\t', 0x7f, 0x80, 0xff, 0x00, 0x1f, b'\r', b'\n', b' ', b'~'] {
                let mut value = vec![b'v'; len];
                if pos < len {
                    value[pos] = odd;
                }
                let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-V: ".to_vec();
                head.extend_from_slice(&value);
                head.extend_from_slice(b"\r\n\r\n");
                check_agreement(&head, RULES);
                let plain = odd == b' ' || odd == b'~' || odd == b'\t' || pos == len;
                if plain {
                    assert!(scan::scan(&head, RULES).is_some(), "deferred {head:?}");
                }
            }
        }
    }
}

/// The memo of the last valid `Host` answers exactly as the check does,
/// whatever came before: a repeat, a near miss, a value too long to keep, an
/// invalid value after a valid one and the other way round.
#[test]
fn the_last_host_memo_answers_as_the_check_does() {
    let long = format!("{}.example", "a".repeat(40));
    let hosts = [
        "127.0.0.1:8080",
        "127.0.0.1:8080",
        "127.0.0.1:808",
        "127.0.0.1:8080,x",
        "127.0.0.1:8080",
        "127.0.0.1:80a0",
        long.as_str(),
        long.as_str(),
        "bad host",
        "[::1]:80",
        "[::1]:80",
        "example.com",
        "example.com:",
        "ex ample.com",
        "example.com",
        "",
    ];
    for host in hosts {
        assert_eq!(
            fields::valid_host_cached(host.as_bytes()),
            fields::valid_host(host.as_bytes()),
            "{host:?}"
        );
    }
}

/// The memo's word-at-a-time compare, at every length it keeps: a value one
/// byte off the remembered one (at any offset) is checked, not matched.
#[test]
fn the_last_host_memo_tells_apart_values_one_byte_off() {
    for n in 1..=32 {
        let host = "a".repeat(n);
        assert!(fields::valid_host_cached(host.as_bytes()), "{host:?}");
        assert!(fields::valid_host_cached(host.as_bytes()), "{host:?} again");
        for at in 0..n {
            let mut near = host.clone().into_bytes();
            near[at] = b' ';
            assert!(!fields::valid_host_cached(&near), "{n} bytes, a space at {at}");
            // The memo still holds `host`: the invalid value was not kept.
            assert!(fields::valid_host_cached(host.as_bytes()));
        }
        let longer = format!("{host} ");
        assert!(!fields::valid_host_cached(longer.as_bytes()), "{n} bytes and a space");
    }
}

/// `same_bytes` against `==`, at every length up to 40 (the word, half and
/// byte paths and the overlapping last word), with one byte changed at every
/// offset.
#[test]
fn same_bytes_agrees_with_slice_equality() {
    for n in 0..=40usize {
        let a: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
        assert!(super::same_bytes(&a, &a.clone()), "{n} bytes");
        assert!(
            !super::same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0,
            "{n} and {} bytes",
            n - 1
        );
        for at in 0..n {
            let mut b = a.clone();
            b[at] ^= 0x20;
            assert!(!super::same_bytes(&a, &b), "{n} bytes, differing at {at}");
        }
    }
}
