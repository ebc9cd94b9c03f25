"""The chat archive connector: the company's RSA keys, the simulator's records, and the two sources."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import fakeredis
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config.settings import ConfigError, load_settings
from connectors.wecom.chat_archive import (
    ArchiveDecryptError,
    ArchiveKeyError,
    ArchiveKeys,
    ArchiveSdkError,
    EncryptedChat,
    NativeSdkSource,
    SimulatorSource,
    load_private_key,
    normalize_archive_message,
    open_chat,
)
from connectors.wecom.client import WeComClient
from connectors.wecom.errors import WeComError
from connectors.wecom.simulator.chat_archive import ChatArchive
from connectors.wecom.simulator.sample_data import DEMO_ARCHIVE_SECRET, sample_chat_archive

ZHAO = "wmDemoZhaoLei0000000000000000001"


@pytest.fixture(scope="module")
def company_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return path


def record(archive: ChatArchive, index: int = -1) -> EncryptedChat:
    return EncryptedChat.from_json(archive.records[index])


def test_a_record_opens_with_the_company_private_key(company_key):
    archive = ChatArchive(secret="s", public_keys={1: company_key.public_key()})
    sent = archive.add("zhangwei", [ZHAO], "text", {"content": "赵总，报价单已发您邮箱"}, msgtime_ms=1_764_000_000_123)
    chat = record(archive)
    assert chat.seq == 1 and chat.msgid == sent["msgid"] and chat.publickey_ver == 1
    assert "报价" not in chat.encrypt_chat_msg  # really encrypted

    message = open_chat(SimulatorSource(client=None), ArchiveKeys(company_key), chat)

    assert message == sent
    parsed = normalize_archive_message(message)
    assert (parsed.sender, parsed.recipients, parsed.externals, parsed.staff) == ("zhangwei", [ZHAO], [ZHAO], ["zhangwei"])
    assert parsed.sent_at.timestamp() == 1_764_000_000.123


def test_each_record_has_its_own_random_key(company_key):
    archive = ChatArchive(secret="s", public_keys={1: company_key.public_key()})
    for _ in range(2):
        archive.add("zhangwei", [ZHAO], "text", {"content": "同一句话"})
    first, second = record(archive, 0), record(archive, 1)
    keys = ArchiveKeys(company_key)
    assert keys.random_key(first) != keys.random_key(second)
    assert first.encrypt_chat_msg != second.encrypt_chat_msg


def test_the_wrong_private_key_is_a_clear_error_without_key_material(company_key, other_key):
    archive = ChatArchive(secret="s", public_keys={1: company_key.public_key()})
    archive.add(ZHAO, ["zhangwei"], "text", {"content": "货还没到"})
    chat = record(archive)

    with pytest.raises(ArchiveDecryptError) as caught:
        open_chat(SimulatorSource(client=None), ArchiveKeys(other_key), chat)

    text = str(caught.value)
    assert chat.msgid in text and "publickey_ver 1" in text and "SCRM_ARCHIVE_PRIVATE_KEY_FILE" in text
    assert ArchiveKeys(company_key).random_key(chat) not in text
    assert chat.encrypt_random_key not in text and "货还没到" not in text


def test_after_a_key_rotation_each_version_opens_with_its_own_key(company_key, other_key):
    archive = ChatArchive(secret="s", public_keys={1: company_key.public_key()})
    old = archive.add(ZHAO, ["zhangwei"], "text", {"content": "旧密钥"})
    assert archive.rotate_key(other_key.public_key()) == 2
    new = archive.add(ZHAO, ["zhangwei"], "text", {"content": "新密钥"})
    keys = ArchiveKeys(default=other_key, by_version={1: company_key})
    source = SimulatorSource(client=None)

    assert [record(archive, 0).publickey_ver, record(archive, 1).publickey_ver] == [1, 2]
    assert open_chat(source, keys, record(archive, 0)) == old
    assert open_chat(source, keys, record(archive, 1)) == new
    with pytest.raises(ArchiveDecryptError, match="publickey_ver 1"):
        open_chat(source, ArchiveKeys(other_key), record(archive, 0))


def test_a_tampered_message_does_not_open(company_key):
    archive = ChatArchive(secret="s", public_keys={1: company_key.public_key()})
    archive.add(ZHAO, ["zhangwei"], "text", {"content": "你好"})
    archive.records[0]["encrypt_chat_msg"] = archive.records[0]["encrypt_chat_msg"][:-8] + "AAAAAAA="
    with pytest.raises(ArchiveDecryptError, match="does not decrypt"):
        open_chat(SimulatorSource(client=None), ArchiveKeys(company_key), record(archive))


@pytest.fixture
async def archive_client(aiohttp_server, aiohttp_client, company_key):
    """A WeComClient with the archive secret against a simulator holding the sample chats."""
    from connectors.wecom.simulator.sample_data import sample_state
    from connectors.wecom.simulator.server import create_simulator_app

    state = sample_state(corp_id="wwarchivetest01", chat_archive=sample_chat_archive(company_key.public_key()))
    server = await aiohttp_server(create_simulator_app(state))
    client = await aiohttp_client(server)
    redis = fakeredis.FakeAsyncRedis()
    yield state, WeComClient(client.session, api_base=str(server.make_url("/cgi-bin/")), corp_id=state.corp_id,
                             secret=DEMO_ARCHIVE_SECRET, redis=redis)
    await redis.aclose()


async def test_the_simulator_pages_by_seq(archive_client, company_key):
    state, client = archive_client
    source, keys = SimulatorSource(client), ArchiveKeys(company_key)

    pages, seq = [], 0
    while chats := await source.get_chat_data(seq, 4):
        pages.append([c.seq for c in chats])
        seq = chats[-1].seq

    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    opened = [open_chat(source, keys, c) for c in await source.get_chat_data(5, 2)]
    assert [m["msgid"] for m in opened] == [r["msgid"] for r in state.chat_archive.records[5:7]]
    assert opened[0]["text"]["content"].startswith("看了，挺不错的")
    assert opened[1]["from"] == "wmDemoWuMin000000000000000000004" and "12315" in opened[1]["text"]["content"]


async def test_the_simulator_refuses_bad_arguments_and_companies_without_an_archive(archive_client):
    state, client = archive_client
    for body in ({"seq": 0, "limit": 1001}, {"seq": -1, "limit": 10}, {"seq": "0", "limit": 10}):
        with pytest.raises(WeComError) as caught:
            await client.call("POST", "sim/finance/getchatdata", json=body)
        assert caught.value.errcode == 40058
    state.chat_archive = None
    with pytest.raises(WeComError) as caught:
        await client.call("POST", "sim/finance/getchatdata", json={"seq": 0, "limit": 10})
    assert caught.value.errcode == 48002


def test_private_key_files_are_checked(tmp_path, company_key):
    assert load_private_key(pem(company_key, tmp_path / "ok.pem")).key_size == 2048
    (tmp_path / "garbage.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(ArchiveKeyError, match="does not|cannot read"):
        load_private_key(tmp_path / "missing.pem")
    with pytest.raises(ArchiveKeyError, match="not an unencrypted PEM private key"):
        load_private_key(tmp_path / "garbage.pem")
    with pytest.raises(ArchiveKeyError, match="not an RSA private key"):
        load_private_key(pem(ec.generate_private_key(ec.SECP256R1()), tmp_path / "ec.pem"))


def test_archive_settings_name_what_to_fix(tmp_path, company_key):
    base = {"SCRM_WECOM_CORP_ID": "ww1", "SCRM_WECOM_SECRET": "s", "SCRM_WECOM_AGENT_ID": "1000002",
            "SCRM_WECOM_TOKEN": "t", "SCRM_WECOM_AES_KEY": "U0NSTSBkZW1vIGtleSBmb3IgdGhlIHNpbXVsYXRvciE",
            "SCRM_WECOM_API_BASE": "http://127.0.0.1:9/cgi-bin/", "SCRM_DATA_DIR": str(tmp_path)}
    key = pem(company_key, tmp_path / "archive.pem")
    old = pem(company_key, tmp_path / "archive_v1.pem")
    (tmp_path / "not-a-key.pem").write_text("hello")

    settings = load_settings({**base, "SCRM_WECOM_ARCHIVE_SECRET": "a", "SCRM_ARCHIVE_PRIVATE_KEY_FILE": str(key),
                              "SCRM_ARCHIVE_PRIVATE_KEYS": f"1={old}"})
    assert settings.archive.configured and settings.archive.private_keys == ((1, old),)
    assert not load_settings(base).archive.configured

    with pytest.raises(ConfigError) as caught:
        load_settings({**base, "SCRM_WECOM_ARCHIVE_SECRET": "a",
                       "SCRM_ARCHIVE_PRIVATE_KEY_FILE": str(tmp_path / "not-a-key.pem"),
                       "SCRM_ARCHIVE_SDK_LIB": str(tmp_path / "libWeWorkFinanceSdk_C.so")})
    problems = "\n".join(caught.value.problems)
    assert "SCRM_ARCHIVE_PRIVATE_KEY_FILE" in problems and "not an unencrypted PEM private key" in problems
    assert "SCRM_ARCHIVE_SDK_LIB" in problems

    with pytest.raises(ConfigError, match="SCRM_WECOM_ARCHIVE_SECRET"):
        load_settings({**base, "SCRM_ARCHIVE_PRIVATE_KEY_FILE": str(key)})
    with pytest.raises(ConfigError, match="SCRM_ARCHIVE_SDK_LIB"):  # real WeCom serves the archive only via its SDK
        load_settings({**base, "SCRM_WECOM_API_BASE": "https://qyapi.weixin.qq.com/cgi-bin/",
                       "SCRM_WECOM_ARCHIVE_SECRET": "a", "SCRM_ARCHIVE_PRIVATE_KEY_FILE": str(key)})
    with pytest.raises(ConfigError, match="1=/keys/v1.pem"):
        load_settings({**base, "SCRM_WECOM_ARCHIVE_SECRET": "a", "SCRM_ARCHIVE_PRIVATE_KEY_FILE": str(key),
                       "SCRM_ARCHIVE_PRIVATE_KEYS": "v1:/keys/old.pem"})


async def test_the_native_sdk_says_what_to_install_when_missing(tmp_path):
    missing = NativeSdkSource(tmp_path / "libWeWorkFinanceSdk_C.so", corp_id="ww1", secret="s")  # loads lazily
    with pytest.raises(ArchiveSdkError) as caught:
        await missing.get_chat_data(0, 100)
    assert "SCRM_ARCHIVE_SDK_LIB" in str(caught.value) and "libWeWorkFinanceSdk_C.so" in str(caught.value)
    assert "developer.work.weixin.qq.com" in str(caught.value)

    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no C library to stand in for a wrong .so")
    with pytest.raises(ArchiveSdkError, match="has no NewSdk"):
        await NativeSdkSource(Path(libc), corp_id="ww1", secret="s").get_chat_data(0, 100)


def test_records_without_a_customer_or_a_type_normalise_without_crashing():
    switch = normalize_archive_message({"msgid": "125289002219525886280", "action": "switch", "time": 1554119421840,
                                        "user": "XuJinSheng"})
    assert (switch.action, switch.sender, switch.externals, switch.msg_type) == ("switch", "", [], "switch")
    odd = normalize_archive_message({"msgid": "m1", "action": "send", "from": ZHAO, "tolist": "zhangwei",
                                     "msgtime": "soon", "msgtype": "sphfeed", "sphfeed": "x"})
    assert odd.recipients == [] and odd.body == {} and odd.sent_at is not None

