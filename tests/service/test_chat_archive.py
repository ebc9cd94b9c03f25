"""The chat archive (会话存档) in the running service: pulled from the simulator by seq, filed under
the right customers, analysed, turned into tickets, resumed after a restart, never filed twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, func, select, update

from config.settings import ArchiveSettings
from connectors.wecom.chat_archive import ArchiveDecryptError
from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from connectors.wecom.simulator.sample_data import DEMO_ARCHIVE_SECRET, sample_chat_archive
from crm_core.models import ChatArchiveCursor, Customer, InboxItem, Message
from crm_core.ticket_models import Ticket
from scrm.app import create_app
from scrm.ingest.chat_archive_puller import ChatArchivePuller
from scrm.keys import CHAT_ARCHIVE_PULLER, SESSIONS
from tests.support.chat import sample_company_files, sync_directory
from tests.support.service import TEST_ROLES, Service, external_id, service_settings

WAIT = 20  # seconds allowed for a background round; it takes milliseconds


@pytest.fixture(scope="module")
def company_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_pem(key: rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


class ArchiveService:
    """Starts (and restarts) the service with the chat archive on, over one database and one simulator."""

    def __init__(self, backend, sim, sim_server, aiohttp_client, tmp_path: Path, company_key) -> None:
        self.backend, self.sim, self.sim_server, self.aiohttp_client = backend, sim, sim_server, aiohttp_client
        self.tmp_path = tmp_path
        self.files = sample_company_files(tmp_path)
        self.key_file = write_pem(company_key, tmp_path / "archive_v1.pem")
        sim.chat_archive = sample_chat_archive(company_key.public_key())

    async def _directory_ctx(self, app) -> AsyncIterator[None]:
        """The staff table filled before the workers start, as the directory sync leaves it."""
        await sync_directory(app[SESSIONS], self.sim)
        yield

    async def start(self, *, key_file: Path | None = None, older_keys: tuple[tuple[int, Path], ...] = (),
                    wait: bool = True) -> Service:
        archive = ArchiveSettings(secret=DEMO_ARCHIVE_SECRET, private_key_file=key_file or self.key_file,
                                  private_keys=older_keys, poll_seconds=3600)
        settings = service_settings(self.backend, self.sim, str(self.sim_server.make_url("/cgi-bin/")),
                                    **self.files, archive=archive)
        app = create_app(settings, TEST_ROLES)
        app.cleanup_ctx.insert(1, self._directory_ctx)  # after the database, before the workers start
        client = await self.aiohttp_client(app)
        crypto = CallbackCrypto(self.sim.callback_token, self.sim.encoding_aes_key, self.sim.corp_id)
        sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                                corp_id=self.sim.corp_id, agent_id=str(self.sim.agent_id))
        service = Service(client=client, sim=self.sim, wecom=sender, crypto=crypto, settings=settings)
        if wait:
            await asyncio.wait_for(puller(service).idle.wait(), WAIT)  # the first round, pulled at start
            await service.settle()
        return service


@pytest.fixture
def archive(backend, sim, sim_server, aiohttp_client, tmp_path, company_key) -> ArchiveService:
    return ArchiveService(backend, sim, sim_server, aiohttp_client, tmp_path, company_key)


def puller(service: Service) -> ChatArchivePuller:
    return service.app[CHAT_ARCHIVE_PULLER]


async def conversation(service: Service, name: str) -> list[Message]:
    async with service.sessions() as session:
        customer_id = await session.scalar(select(Customer.id).where(Customer.name == name))
        return list((await session.scalars(
            select(Message).where(Message.customer_id == customer_id, Message.channel == "wecom_archive")
            .order_by(Message.sent_at))).all())


async def counts(service: Service) -> tuple[int, int, int]:
    """(archived messages, inbox rows, stored cursor)."""
    async with service.sessions() as session:
        messages = await session.scalar(select(func.count()).select_from(Message).where(Message.channel == "wecom_archive"))
        inbox = await session.scalar(select(func.count()).select_from(InboxItem).where(InboxItem.source == "wecom_archive"))
        seq = await session.scalar(select(ChatArchiveCursor.seq).where(ChatArchiveCursor.corp_id == service.sim.corp_id))
    return messages, inbox, seq or 0


async def test_archived_chats_land_in_the_right_customers_with_directions(archive):
    service = await archive.start()

    zhao = await conversation(service, "赵磊")
    assert [(m.direction, m.sender, m.text) for m in zhao] == [
        ("out", "zhangwei", "赵总您好，上次您要的数控机床报价单我整理好了，今天发您邮箱。"),
        ("in", external_id(service.sim, "赵磊"), "好的，麻烦尽快，我们这周要定下来。"),
        ("in", external_id(service.sim, "赵磊"), "[图片]"),
        ("out", "zhangwei", "收到，下午三点前发您。"),
    ]
    assert zhao[2].msg_type == "image" and zhao[2].meta["image"]["filesize"] == 183_422
    first = service.sim.chat_archive.records[0]
    assert zhao[0].external_msg_id == first["msgid"]
    assert [m.direction for m in await conversation(service, "孙丽")] == ["out", "in"]
    # A customer group chat: the customer's line and the rep's file, both filed under the customer.
    feng = await conversation(service, "冯雪")
    assert [(m.direction, m.text) for m in feng] == [("in", "活动方案我们内部过了，整体满意，合同这周可以签。"),
                                                      ("out", "[文件] 晨光合作合同.pdf")]
    assert all(m.recipient == "wrDemoChenGuang0000000000000001" for m in feng)

    async with service.sessions() as session:
        customers = {c.name: c for c in (await session.scalars(select(Customer))).all()}
    # Unknown customers were created from WeCom's profile, owned by the rep who chats with them.
    assert {name: c.owner.userid for name, c in customers.items()} == {
        "赵磊": "zhangwei", "孙丽": "zhangwei", "吴敏": "lina", "冯雪": "lina"}
    assert customers["赵磊"].company == "华东精密机械有限公司"
    assert customers["赵磊"].last_contact_at == zhao[-1].sent_at


async def test_customer_lines_are_analysed_and_the_complaint_becomes_a_ticket(archive):
    service = await archive.start()

    wu = await conversation(service, "吴敏")
    complaint, reply = wu
    assert (complaint.direction, reply.direction) == ("in", "out")
    assert complaint.analysis["label"] == "negative" and "投诉" in complaint.analysis["tags"]
    assert reply.analysis is None  # the rep's words are not the customer's mood
    # 看了，挺不错的，下周二下午有空: praise beside an appointment reads as a good mood (the model
    # now weighs it nearly as much neutral as positive, so the sign is what is asserted).
    sun = (await conversation(service, "孙丽"))[1].analysis
    assert sun["label"] != "negative" and sun["sentiment"] > 0.2
    async with service.sessions() as session:
        [ticket] = (await session.scalars(select(Ticket))).all()
        wu_customer = await session.get(Customer, complaint.customer_id)
        assert ticket.customer_id == wu_customer.id and ticket.trigger_message_id == complaint.id
        assert ticket.priority == "urgent"  # a 12315 threat
        assert ticket.assignee.userid == "wangfang"
        assert wu_customer.analysed_messages == 1 and wu_customer.sentiment_score < 0
    # No 微信客服 window for an archived chat: the owning rep is asked to reach out.
    to_lina = [m["text"]["content"] for m in service.sim.sent_app_messages if m["touser"] == "lina" and "text" in m]
    assert any(ticket.number in text for text in to_lina)


async def test_the_cursor_survives_a_restart_and_nothing_is_filed_twice(archive):
    first = await archive.start()
    assert await counts(first) == (10, 10, 10)
    await first.client.close()

    added = archive.sim.chat_archive.add(external_id(archive.sim, "周杰"), ["zhangwei"], "text",
                                         {"content": "张经理，上次那批货的交期能提前一周吗？"})
    archive.sim.chat_archive.pages_served.clear()
    second = await archive.start()

    assert archive.sim.chat_archive.pages_served[0] == (10, 100)  # continued from the stored seq
    assert await counts(second) == (11, 11, 11)
    [zhou] = await conversation(second, "周杰")
    assert (zhou.external_msg_id, zhou.direction) == (added["msgid"], "in")
    assert zhou.sent_at.timestamp() * 1000 == pytest.approx(added["msgtime"], abs=1)

    # The same pages served again (a restored cursor, a purged inbox): every message still once.
    async with second.sessions() as session:
        await session.execute(update(ChatArchiveCursor).values(seq=0))
        await session.execute(delete(InboxItem).where(InboxItem.source == "wecom_archive", InboxItem.id % 2 == 0))
        await session.commit()
    puller(second).page_size = 4
    archive.sim.chat_archive.pages_served.clear()
    assert await puller(second).drain() == 11
    assert archive.sim.chat_archive.pages_served == [(0, 4), (4, 4), (8, 4)]
    await second.settle()
    messages, _, seq = await counts(second)
    assert (messages, seq) == (11, 11)
    async with second.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 1
        wu = await session.scalar(select(Customer).where(Customer.name == "吴敏"))
        assert wu.analysed_messages == 1


async def test_a_record_that_does_not_decrypt_leaves_the_cursor_where_it_was(archive, caplog, tmp_path):
    service = await archive.start()
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # The admin uploads a new public key to WeCom but the service still has only the old private key.
    assert archive.sim.chat_archive.rotate_key(new_key.public_key()) == 2
    now_ms = int(archive.sim.now() * 1000)
    archive.sim.chat_archive.add(external_id(archive.sim, "郑浩"), ["lina"], "text", {"content": "报价收到了，谢谢"},
                                 msgtime_ms=now_ms)
    archive.sim.chat_archive.add("lina", [external_id(archive.sim, "郑浩")], "text", {"content": "不客气"},
                                 msgtime_ms=now_ms + 20_000)

    with pytest.raises(ArchiveDecryptError, match="publickey_ver 2"):
        await puller(service).pull_page()
    assert await counts(service) == (10, 10, 10)

    with caplog.at_level(logging.WARNING, logger="scrm.ingest.chat_archive_puller"):
        puller(service).wake()
        await asyncio.wait_for(puller(service).idle.wait(), WAIT)
    [warning] = [r for r in caplog.records if r.name == "scrm.ingest.chat_archive_puller"]
    assert "cursor unchanged" in warning.getMessage() and "publickey_ver 2" in warning.getMessage()
    record = archive.sim.chat_archive.records[-1]
    assert record["encrypt_random_key"] not in caplog.text and "PRIVATE KEY" not in caplog.text
    assert await counts(service) == (10, 10, 10)
    await service.client.close()

    # With the new key configured (and the old one kept for version 1) the pull goes on from seq 10.
    restarted = await archive.start(key_file=write_pem(new_key, tmp_path / "archive_v2.pem"),
                                    older_keys=((1, archive.key_file),))
    assert await counts(restarted) == (12, 12, 12)
    assert [m.text for m in await conversation(restarted, "郑浩")] == ["报价收到了，谢谢", "不客气"]


async def test_a_failed_pull_is_retried(archive, caplog):
    archive.sim.fail_next("sim/finance/getchatdata", http_status=503)
    with caplog.at_level(logging.WARNING, logger="scrm.ingest.chat_archive_puller"):
        service = await archive.start(wait=False)
        await asyncio.wait_for(puller(service).caught_up.wait(), WAIT)  # after a 1 s backoff
    await service.settle()
    assert any("retrying in 1 s" in r.getMessage() for r in caplog.records if r.name == "scrm.ingest.chat_archive_puller")
    assert await counts(service) == (10, 10, 10)
