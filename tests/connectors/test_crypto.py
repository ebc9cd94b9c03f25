"""Callback crypto against the public vectors, and every way a callback must be refused."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import xml.etree.ElementTree as ET

import pytest
from wechatpy.work.crypto import PrpCrypto

from connectors.wecom.crypto import (
    MAX_ENVELOPE_BYTES,
    MAX_XML_FIELDS,
    CallbackCrypto,
    EnvelopeTooLargeError,
    MalformedCallbackError,
    SignatureError,
    find_encrypted,
    parse_plaintext_xml,
)
from connectors.wecom.simulator.callbacks import (
    build_plaintext_change_external_contact,
    build_plaintext_image,
    build_plaintext_kf_msg_or_event,
    build_plaintext_location,
    build_plaintext_text,
)

# The team's shared/ folder sits beside the checkout (as it does for CI's clean clone).
VECTORS_FILE = Path(__file__).parents[3] / "shared" / "datasets" / "wecom" / "crypto-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text())
TOKEN, KEY, CORP = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7"


def sign(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Independent of the code under test: SHA1 of the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def envelope(encrypted: str, corp: str = CORP) -> bytes:
    return f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()


def crypto_for(name: str) -> CallbackCrypto:
    vector = VECTORS[name]
    return CallbackCrypto(vector["token"], vector["encoding_aes_key"], vector["receiveid"])


@pytest.fixture
def crypto() -> CallbackCrypto:
    return CallbackCrypto(TOKEN, KEY, CORP)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_verify_url_vectors_return_exact_echo(name: str) -> None:
    url = VECTORS[name]["verify_url"]
    plain = crypto_for(name).verify_url(url["msg_signature"], url["timestamp"], url["nonce"], url["echostr"])
    assert plain == url["expected_plain"]


@pytest.mark.parametrize(
    ("name", "post"),
    [
        ("official_sample_weworkapi_python", "post_xml"),
        ("official_sample_weworkapi_python", "post_json"),
        ("official_doc_91144_example", "post_xml"),
        ("wechatpy_tests", "post_xml"),
    ],
)
def test_post_vectors_decrypt(name: str, post: str) -> None:
    vector = VECTORS[name]
    case = vector[post]
    body = case["body"].encode() if "body" in case else envelope(case["encrypt"], vector["receiveid"])
    plain = crypto_for(name).decrypt_callback(body, case["msg_signature"], case["timestamp"], case["nonce"])
    if "expected_plain" in case:
        assert plain == case["expected_plain"]
    for fragment in case.get("expected_plain_contains", []):
        assert fragment in plain


def test_wechatpy_deterministic_encryption_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    case = VECTORS["wechatpy_tests"]["encrypt_deterministic"]
    monkeypatch.setattr(PrpCrypto, "get_random_string", lambda self: case["random16"])
    body, signature = crypto_for("wechatpy_tests").encrypt_callback(
        case["plain"], timestamp=case["timestamp"], nonce=case["nonce"]
    )
    assert f"<Encrypt><![CDATA[{case['expected_encrypt']}]]></Encrypt>" in body
    assert signature == case["expected_msg_signature"]


def test_round_trip_and_outer_body_shape(crypto: CallbackCrypto) -> None:
    plain = "<xml><Content><![CDATA[查 张三]]></Content></xml>"
    body, signature = crypto.encrypt_callback(plain, timestamp="1700000000", nonce="42", agent_id="1000002")
    assert body.startswith(f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[")
    assert body.endswith("]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>")
    assert crypto.decrypt_callback(body.encode(), signature, "1700000000", "42") == plain


def test_bad_signature_is_refused(crypto: CallbackCrypto) -> None:
    body, signature = crypto.encrypt_callback("<xml/>", timestamp="1", nonce="2")
    with pytest.raises(SignatureError):
        crypto.decrypt_callback(body.encode(), signature, "1", "3")
    with pytest.raises(SignatureError):
        crypto.decrypt_callback(body.encode(), "0" * 40, "1", "2")
    with pytest.raises(SignatureError):
        crypto.verify_url("非ascii签名", "1", "2", "abcd")


def test_tampered_ciphertext(crypto: CallbackCrypto) -> None:
    body, signature = crypto.encrypt_callback("<xml><A>1</A></xml>", timestamp="1", nonce="2")
    encrypted = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    tampered = ("B" if encrypted[10] != "B" else "C").join([encrypted[:10], encrypted[11:]])
    with pytest.raises(SignatureError):  # unsigned change: caught before decrypting
        crypto.decrypt_callback(envelope(tampered), signature, "1", "2")
    with pytest.raises(MalformedCallbackError):  # re-signed with the token: garbage after decryption
        crypto.decrypt_callback(envelope(tampered), sign(TOKEN, "1", "2", tampered), "1", "2")


@pytest.mark.parametrize("encrypted", ["not base64 at all!", "QUJD", ""])
def test_undecryptable_ciphertext_is_malformed(crypto: CallbackCrypto, encrypted: str) -> None:
    with pytest.raises(MalformedCallbackError):
        crypto.decrypt_callback(envelope(encrypted), sign(TOKEN, "1", "2", encrypted), "1", "2")


def test_wrong_receive_id_is_malformed(crypto: CallbackCrypto) -> None:
    other = CallbackCrypto(TOKEN, KEY, "wwsomeoneelse")
    body, signature = other.encrypt_callback("<xml/>", timestamp="1", nonce="2")
    with pytest.raises(MalformedCallbackError, match="receive id"):
        crypto.decrypt_callback(body.encode(), signature, "1", "2")


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]><xml><Encrypt>&lol9;</Encrypt></xml>"
)
EXTERNAL_ENTITY = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, "this is not xml", "<xml><Encrypt>unclosed", "<xml><Nothing/></xml>", ""],
    ids=["billion-laughs", "external-entity", "not-xml", "broken-xml", "no-encrypt", "empty"],
)
def test_hostile_or_broken_envelope_is_malformed_fast(crypto: CallbackCrypto, body: str) -> None:
    started = time.perf_counter()
    with pytest.raises(MalformedCallbackError):
        crypto.decrypt_callback(body.encode(), "0" * 40, "1", "2")
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize(
    "inner",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, "<xml><Content>unclosed</xml>"],
    ids=["billion-laughs", "external-entity", "broken-xml"],
)
def test_hostile_inner_xml_is_malformed(crypto: CallbackCrypto, inner: str) -> None:
    body, signature = crypto.encrypt_callback(inner, timestamp="1", nonce="2")
    started = time.perf_counter()
    with pytest.raises(MalformedCallbackError):
        crypto.decrypt_callback(body.encode(), signature, "1", "2")
    assert time.perf_counter() - started < 0.1


def test_non_xml_inner_plaintext_is_returned(crypto: CallbackCrypto) -> None:
    body, signature = crypto.encrypt_callback('{"MsgType": "text"}', timestamp="1", nonce="2")
    assert crypto.decrypt_callback(body.encode(), signature, "1", "2") == '{"MsgType": "text"}'


@pytest.mark.parametrize("key", ["short", KEY[:-1] + "!", KEY + "A"])
def test_invalid_encoding_aes_key_is_a_config_error(key: str) -> None:
    with pytest.raises(ValueError, match="EncodingAESKey"):
        CallbackCrypto(TOKEN, key, CORP)


def test_parse_plaintext_xml_flattens_nested_and_repeated() -> None:
    text = (
        "<xml><MsgType><![CDATA[event]]></MsgType><Content>  spaced </Content>"
        "<SendLocationInfo><Location_X>23.1</Location_X><Label><![CDATA[广州]]></Label></SendLocationInfo>"
        "<Item>a</Item><Item>b</Item></xml>"
    )
    assert parse_plaintext_xml(text) == {
        "MsgType": "event",
        "Content": "  spaced ",
        "SendLocationInfo.Location_X": "23.1",
        "SendLocationInfo.Label": "广州",
        "Item": "a",
        "Item#2": "b",
    }


EXTERNAL_ENTITY = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><A>&e;</A></xml>'
DOCTYPE_ONLY = '<!DOCTYPE xml><xml><A>1</A></xml>'
UNDEFINED_ENTITY = "<xml><A>&nope;</A></xml>"
TOO_DEEP = "<xml>" + "<a>" * 17 + "x" + "</a>" * 17 + "</xml>"
TOO_MANY = "<xml>" + "<a>1</a>" * 2001 + "</xml>"


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY, DOCTYPE_ONLY, UNDEFINED_ENTITY, TOO_DEEP, TOO_MANY,
                                  "<root><A>1</A></root>", "{}", "<xml>", "<xml></xml><xml></xml>", ""])
def test_parse_plaintext_xml_refuses_bad_input(text: str) -> None:
    with pytest.raises(MalformedCallbackError):
        parse_plaintext_xml(text)


def reference_flatten(text: str) -> dict[str, str]:
    """The same flattening done the slow way, on an ElementTree tree: the parser must agree with it."""
    out: dict[str, str] = {}
    taken: set[str] = set()

    def walk(element: ET.Element, prefix: str) -> None:
        for child in element:
            path = key = f"{prefix}{child.tag}"
            n = 1
            while key in taken:
                n += 1
                key = f"{path}#{n}"
            taken.add(key)
            if len(child):
                walk(child, key + ".")
            else:
                out[key] = child.text or ""

    walk(ET.fromstring(text), "")
    return out


AGREEMENT_CASES = [
    build_plaintext_text(CORP, "1000002", "zhangwei", "  查 张三 \n第二行 <不是标签> & ]]> 😀"),
    build_plaintext_image(CORP, "1000002", "zhangwei", "http://p/1.jpg", "media-1"),
    build_plaintext_location(CORP, "1000002", "zhangwei", 23.13, 113.26, scale=15, label="广州"),
    build_plaintext_change_external_contact(CORP, "add_external_contact", "zhangwei", "wmEXT1", state="ch1",
                                            welcome_code="WC1"),
    build_plaintext_kf_msg_or_event(CORP, "TOKEN1", "wkKF1"),
    "<xml><A>x<!-- a comment -->y</A><B>  </B><C/><D><E>1</E><E>2</E>tail<E>3</E></D><D>again</D>"
    "<F><![CDATA[<b>&amp;</b>]]> and &lt;more&gt;</F></xml>",
    "<xml>" + "".join(f"<L{i}>" for i in range(16)) + "deep" + "".join(f"</L{i}>" for i in reversed(range(16))) + "</xml>",
    *(vector["post_xml"]["expected_plain"] for vector in VECTORS.values() if "expected_plain" in vector["post_xml"]),
    *(vector["post_xml"]["body"] for vector in VECTORS.values() if "body" in vector["post_xml"]),  # envelopes
]


@pytest.mark.parametrize("text", AGREEMENT_CASES)
def test_parse_plaintext_xml_agrees_with_a_tree_walk(text: str) -> None:
    assert parse_plaintext_xml(text) == reference_flatten(text)


ENVELOPE_SHAPES = [
    envelope("QUJDRA=="),
    b'<?xml version="1.0" encoding="utf-8"?>\n<xml>\n  <ToUserName><![CDATA[wx1]]></ToUserName>\n'
    b"  <Encrypt><![CDATA[QUJDRA==]]></Encrypt>\n  <AgentID><![CDATA[218]]></AgentID>\n</xml>\n",
    b"<xml><Encrypt>QUJDRA==</Encrypt><AgentID>218</AgentID><Empty/></xml>",
    b"<xml><ToUserName><![CDATA[a>b]]></ToUserName><Encrypt><![CDATA[QUJD]]><![CDATA[RA==]]></Encrypt></xml>",
]


@pytest.mark.parametrize("body", ENVELOPE_SHAPES)
def test_envelope_scan_finds_encrypt_in_every_shape_wecom_writes(body: bytes) -> None:
    assert find_encrypted(body) == "QUJDRA=="


def test_envelope_scan_reads_the_public_vectors_as_a_parser_does() -> None:
    for vector in VECTORS.values():
        if "body" in vector["post_xml"]:
            body = vector["post_xml"]["body"]
            assert find_encrypted(body.encode()) == ET.fromstring(body).findtext("Encrypt")


@pytest.mark.parametrize("body", [
    b"<xml>" + b"<a/>" * 1999 + b"</xml>",  # the audit's 8 KB flood of siblings
    b"<xml>" + b"<a>" * 5 + b"<Encrypt>QUJD</Encrypt>" + b"</a>" * 5 + b"</xml>",
    b"<xml><Encrypt>QUJD</Encrypt><Encrypt>QUJD</Encrypt></xml>",
    b"<xml><a><Encrypt>QUJD</Encrypt></a></xml>",  # not the root's child
    b"<xml><Encrypt><b>QUJD</b></Encrypt></xml>",
    b"<xml><Encrypt>QUJD</Encrypt></xml><xml/>",
    b"<xml><Encrypt>QUJD</Encrypt></yml>",
    b"<xml><Encrypt>QUJD</Encrypt>",
    b"<xml><!-- hi --><Encrypt>QUJD</Encrypt></xml>",
    b"<xml><Encrypt>QU JD</Encrypt></xml>",
    b"<xml><Encrypt>&amp;</Encrypt></xml>",
    b"<xml><Encrypt><![CDATA[QUJD</Encrypt></xml>",
    b"junk<xml><Encrypt>QUJD</Encrypt></xml>",
    b"<xml><Encrypt>QUJD</Encrypt></xml>junk",
    b"<xml><Encrypt></Encrypt></xml>",
    b"<>",
    b"",
])
def test_envelope_scan_refuses_anything_wecom_would_not_send(body: bytes) -> None:
    with pytest.raises(MalformedCallbackError):
        find_encrypted(body)


def test_envelope_scan_refuses_an_oversized_body_before_looking_at_it() -> None:
    with pytest.raises(EnvelopeTooLargeError):
        find_encrypted(b"<xml><Encrypt>" + b"A" * MAX_ENVELOPE_BYTES + b"</Encrypt></xml>")


def test_many_siblings_flatten_in_linear_time() -> None:
    text = "<xml>" + "<a>1</a>" * MAX_XML_FIELDS + "</xml>"
    started = time.perf_counter()
    fields = parse_plaintext_xml(text)
    assert time.perf_counter() - started < 0.1  # a quarter of a second before the repeat counter
    assert len(fields) == MAX_XML_FIELDS and fields[f"a#{MAX_XML_FIELDS}"] == "1"
