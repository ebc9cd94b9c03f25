"""WeCom callback signature and encryption, on top of wechatpy's AES/PKCS#7 code.

What this module adds to wechatpy: an unauthenticated envelope is never parsed as XML. Its
``<Encrypt>`` text is found by one bounded linear scan (size, element count and depth checked
as it goes, DTDs and entities refused), the signature over it is checked in constant time, and
only the decrypted, authenticated message is parsed, with the same refusals. A small error tree
the HTTP endpoint maps to status codes::

    CallbackCryptoError
    ├── SignatureError            -> 403 (msg_signature does not match)
    └── MalformedCallbackError    -> 400 (bad XML, DTD/entities, no Encrypt, bad base64/padding, wrong receive id)
        └── EnvelopeTooLargeError -> 413 (more than MAX_ENVELOPE_BYTES)

WeCom's signature is sha1 over the sorted token, timestamp, nonce and Encrypt text (加解密方案说明,
https://developer.work.weixin.qq.com/document/path/90968), so Encrypt is all that must be read
before the sender is known.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import struct
from xml.parsers import expat

from wechatpy.utils import WeChatSigner
from wechatpy.work.crypto import PrpCrypto
from wechatpy.work.exceptions import InvalidCorpIdException

_AES_BLOCK = 16


class CallbackCryptoError(Exception):
    """Base for every refused callback."""


class SignatureError(CallbackCryptoError):
    """msg_signature does not match token/timestamp/nonce/ciphertext."""


class MalformedCallbackError(CallbackCryptoError):
    """The callback is signed correctly (or could not be checked) but cannot be read."""


class EnvelopeTooLargeError(MalformedCallbackError):
    """The body is larger than any envelope WeCom sends."""


# WeCom's envelope is <xml> with ToUserName, Encrypt and AgentID (a dozen `<`, CDATA included),
# around a message of a few KB at most (a text message holds 2048 bytes; the largest events
# list a group's members); base64 adds a third. Anything far beyond that is not from WeCom.
MAX_ENVELOPE_BYTES = 128 * 1024
MAX_ENVELOPE_TAGS = 32
MAX_ENVELOPE_DEPTH = 4
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_TAG_NAME_END = re.compile(rb"[\s/>]")


def find_encrypted(body: bytes) -> str:
    """The ``<Encrypt>`` text of an unauthenticated envelope, in one linear pass over at most
    MAX_ENVELOPE_TAGS tags: no tree, no parser, nothing whose cost grows faster than the body.

    Only what WeCom sends is accepted: a root element whose children hold text or CDATA, an
    optional ``<?xml ...?>`` declaration, no DTD, comment or entity declaration (``<!`` other
    than CDATA), exactly one Encrypt child of the root holding base64. What is extracted is
    then checked against the signature, so a lenient reading could not let anything through."""
    if len(body) > MAX_ENVELOPE_BYTES:
        raise EnvelopeTooLargeError(f"callback body is larger than {MAX_ENVELOPE_BYTES:,} bytes")
    if body.count(b"<") > MAX_ENVELOPE_TAGS:
        raise MalformedCallbackError(f"callback envelope has more than {MAX_ENVELOPE_TAGS} tags")
    open_tags: list[bytes] = []
    encrypted: list[bytes] = []
    collecting: list[bytes] | None = None  # the Encrypt element's text while inside it
    pos, seen_root = 0, False
    while (start := body.find(b"<", pos)) >= 0:
        if collecting is not None:
            collecting.append(body[pos:start])
        elif body[pos:start].strip() and not open_tags:
            raise MalformedCallbackError("unacceptable XML: text outside the root element")
        if body.startswith(b"<![CDATA[", start):
            end = body.find(b"]]>", start + 9)
            if end < 0 or not open_tags:
                raise MalformedCallbackError("unacceptable XML: unterminated or misplaced CDATA")
            if collecting is not None:
                collecting.append(body[start + 9:end])
            pos = end + 3
            continue
        if body.startswith(b"<!", start):
            raise MalformedCallbackError("unacceptable XML: a DTD, comment or entity declaration")
        end = body.find(b">", start)
        if end < 0:
            raise MalformedCallbackError("unacceptable XML: unterminated tag")
        tag, pos = body[start + 1:end], end + 1
        if tag.startswith(b"?"):
            if seen_root or not tag.endswith(b"?"):
                raise MalformedCallbackError("unacceptable XML: misplaced processing instruction")
            continue
        if tag.startswith(b"/"):
            name = tag[1:].strip()
            if not open_tags or open_tags.pop() != name:
                raise MalformedCallbackError("unacceptable XML: mismatched closing tag")
            if collecting is not None:
                encrypted.append(b"".join(collecting))
                collecting = None
            continue
        if collecting is not None:
            raise MalformedCallbackError("unacceptable XML: <Encrypt> holds elements")
        if seen_root and not open_tags:
            raise MalformedCallbackError("unacceptable XML: more than one root element")
        match = _TAG_NAME_END.search(tag)
        name = tag[:match.start()] if match else tag
        if not name:
            raise MalformedCallbackError("unacceptable XML: a tag without a name")
        seen_root = True
        if tag.endswith(b"/"):
            continue
        open_tags.append(name)
        if len(open_tags) > MAX_ENVELOPE_DEPTH:
            raise MalformedCallbackError(f"callback envelope nests deeper than {MAX_ENVELOPE_DEPTH} levels")
        if name == b"Encrypt" and len(open_tags) == 2:
            collecting = []
    if open_tags or not seen_root:
        raise MalformedCallbackError("unacceptable XML: the document is incomplete")
    if body[pos:].strip():
        raise MalformedCallbackError("unacceptable XML: text after the root element")
    if len(encrypted) != 1 or not encrypted[0]:
        raise MalformedCallbackError("callback has no <Encrypt> element" if not encrypted or not encrypted[0]
                                     else "callback has more than one <Encrypt> element")
    if not _BASE64.fullmatch(encrypted[0]):
        raise MalformedCallbackError("ciphertext is not base64")
    return encrypted[0].decode("ascii")


def parse_plaintext_xml(text: str) -> dict[str, str]:
    """Flatten a decrypted ``<xml>...</xml>`` message into ``{element name: text}``.

    Nested elements become dotted paths (``SendLocationInfo.Location_X``); a path that
    repeats gets ``#2``, ``#3`` ... suffixes so nothing is silently dropped. CDATA is
    unwrapped and text is kept exactly (no stripping: chat content may start with spaces).
    WeCom's messages are a few levels deep with a few dozen fields; anything far beyond that is
    refused rather than walked (deep nesting or a flood of siblings would cost a worker dearly).
    """
    root, fields = _flat_xml(text)
    if root != "xml":
        raise MalformedCallbackError(f"root element is <{root}>, expected <xml>")
    return fields


MAX_XML_DEPTH = 16
MAX_XML_FIELDS = 2000


def _flat_xml(text: str | bytes) -> tuple[str, dict[str, str]]:
    """Parse a decrypted message into (root tag, flattened fields) in one expat pass, with no tree
    built (this runs for every callback). DTDs, entity declarations and external references
    are refused where they appear, as defusedxml does; without a DTD no entity can expand."""
    flattener = _Flattener()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = flattener.start
    parser.EndElementHandler = flattener.end
    parser.CharacterDataHandler = flattener.text
    parser.StartDoctypeDeclHandler = _forbidden("a DTD")
    parser.EntityDeclHandler = _forbidden("an entity declaration")
    parser.UnparsedEntityDeclHandler = _forbidden("an entity declaration")
    parser.ExternalEntityRefHandler = _forbidden("an external reference")
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise MalformedCallbackError(f"unacceptable XML: {expat.errors.messages[exc.code]}") from exc
    return flattener.root, flattener.fields


def _forbidden(what: str):
    def refuse(*_: object) -> None:
        raise MalformedCallbackError(f"unacceptable XML: {what}")
    return refuse


class _Flattener:
    """Element events to ``{dotted path: text}``. An element's text counts only when it has no
    child elements. `seen` counts each path's elements so far, so the n-th repeat gets ``#n`` at
    once: a key ``path#n`` can come from no other path (tag names cannot hold ``#``), and every
    element costs the same however many siblings it has."""

    def __init__(self) -> None:
        self.root = ""
        self.fields: dict[str, str] = {}
        self.seen: dict[str, int] = {}
        self.elements = 0
        self.open: list[tuple[str, list[str] | None]] = []  # (path, text so far; None once it has a child)

    def start(self, tag: str, _attributes: dict) -> None:
        if not self.root:
            self.root = tag
            self.open.append(("", None))
            return
        self.elements += 1
        if self.elements > MAX_XML_FIELDS:
            raise MalformedCallbackError(f"callback XML has more than {MAX_XML_FIELDS} elements")
        if len(self.open) > MAX_XML_DEPTH:
            raise MalformedCallbackError(f"callback XML nests deeper than {MAX_XML_DEPTH} levels")
        parent, _ = self.open[-1]
        self.open[-1] = (parent, None)
        path = f"{parent}.{tag}" if parent else tag
        n = self.seen.get(path, 0) + 1
        self.seen[path] = n
        self.open.append((path if n == 1 else f"{path}#{n}", []))

    def text(self, data: str) -> None:
        if self.open and self.open[-1][1] is not None:
            self.open[-1][1].append(data)

    def end(self, _tag: str) -> None:
        key, text = self.open.pop()
        if text is not None:
            self.fields[key] = "".join(text)


def _utf8(value: str) -> str:
    """A query value as text that encodes: aiohttp keeps bytes that are not UTF-8 as lone
    surrogates, which would raise when hashed; replaced, they are a plain mismatch."""
    return value.encode("utf-8", "replace").decode("utf-8")


def _signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce, encrypted)
    return signer.signature


class CallbackCrypto:
    """Verify, decrypt and (for the simulator) encrypt WeCom callbacks for one app."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            key = b""
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise ValueError("EncodingAESKey must be 43 characters of base64 (a 32-byte key)")
        self._token = token
        self._key = key
        self._receive_id = receive_id

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Answer WeCom's URL check (GET): return the decrypted echostr to send back verbatim."""
        return self._check_and_decrypt(echostr, msg_signature, timestamp, nonce)

    def decrypt_callback(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Return the inner plaintext of a POSTed callback after checking its signature."""
        return self.open_callback(body, msg_signature, timestamp, nonce)[0]

    def open_callback(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> tuple[str, dict[str, str] | None]:
        """The inner plaintext and, when it is XML, its fields: checked and parsed once, since every
        callback is parsed on the way in and this is the busiest path there is."""
        return self.open_verified(self.verify_envelope(body, msg_signature, timestamp, nonce))

    def verify_envelope(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """The envelope's ciphertext once its signature holds: all the work an unauthenticated
        sender can cause, linear in the (bounded) body and a few microseconds for WeCom's."""
        encrypted = find_encrypted(body)
        self._check_signature(encrypted, msg_signature, timestamp, nonce)
        return encrypted

    def open_verified(self, encrypted: str) -> tuple[str, dict[str, str] | None]:
        """Decrypt and parse a ciphertext whose signature was checked (the sender knows the token)."""
        plaintext = self._decrypt(encrypted)
        fields = parse_plaintext_xml(plaintext) if plaintext.lstrip().startswith("<") else None
        return plaintext, fields

    def encrypt_callback(
        self, plaintext: str, *, timestamp: str, nonce: str, agent_id: str | None = None
    ) -> tuple[str, str]:
        """Build the POST body WeCom would send for ``plaintext`` and its msg_signature."""
        encrypted = PrpCrypto(self._key).encrypt(plaintext, self._receive_id).decode("ascii")
        signature = _signature(self._token, timestamp, nonce, encrypted)
        agent = f"<AgentID><![CDATA[{agent_id}]]></AgentID>" if agent_id is not None else ""
        body = (
            f"<xml><ToUserName><![CDATA[{self._receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>{agent}</xml>"
        )
        return body, signature

    def _check_and_decrypt(self, encrypted: str, msg_signature: str, timestamp: str, nonce: str) -> str:
        self._check_signature(encrypted, msg_signature, timestamp, nonce)
        return self._decrypt(encrypted)

    def _check_signature(self, encrypted: str, msg_signature: str, timestamp: str, nonce: str) -> None:
        expected = _signature(self._token, _utf8(timestamp), _utf8(nonce), _utf8(encrypted))
        if not hmac.compare_digest(expected.encode(), _utf8(msg_signature).encode()):
            raise SignatureError("msg_signature mismatch")

    def _decrypt(self, encrypted: str) -> str:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except binascii.Error as exc:
            raise MalformedCallbackError("ciphertext is not base64") from exc
        if not raw or len(raw) % _AES_BLOCK:
            raise MalformedCallbackError("ciphertext is not a whole number of AES blocks")
        try:
            return PrpCrypto(self._key).decrypt(encrypted, self._receive_id)
        except InvalidCorpIdException as exc:
            raise MalformedCallbackError("receive id does not match this corp") from exc
        except (ValueError, struct.error, IndexError) as exc:  # padding, length prefix, UTF-8
            raise MalformedCallbackError(f"cannot decrypt: {type(exc).__name__}") from exc
