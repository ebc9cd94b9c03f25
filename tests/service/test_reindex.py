"""`scrm nlp reindex` after a model change: the new analysis is stored, the lifecycle stage and 热度
follow it, progress is shown, and a run that crashed resumes after its last committed batch."""

from __future__ import annotations

import dataclasses
import io

import pytest
from sqlalchemy import select

import nlp
import nlp.analyzer
from crm_core.db import utcnow
from crm_core.job_runs import JobRun
from crm_core.lifecycle import LifecycleService
from crm_core.models import Customer, LifecycleChange, Message
from crm_core.ticket_models import Ticket
from scrm.cli.nlp_reindex import reindex
from tests.service.conftest import external_id
from tests.service.test_analysis import customer_writes, service  # noqa: F401 (fixture)

QUESTION = "好的，收到了，谢谢"  # a plain reply the shipped model reads as no buying
ORDER = "我们想订一批冷链箱，麻烦报个价"  # a buying message


def new_model(monkeypatch, *, buying: dict[str, float], fail_on: str | None = None) -> list[str]:
    """Stand in for a retrained model: the shipped analysis with these buying scores; raises on
    `fail_on` as a crash would. Returns the texts it analysed."""
    seen: list[str] = []
    real = nlp.analyze_many

    async def analyze_batch(texts):
        if fail_on is not None and fail_on in texts:
            raise RuntimeError("worker killed")
        seen.extend(texts)
        return [_with_buying(a, buying[t]) if t in buying else a for t, a in zip(texts, real(texts))]

    monkeypatch.setattr(nlp, "analyze_batch", analyze_batch)
    return seen


def _with_buying(analysis: nlp.Analysis, score: float) -> nlp.Analysis:
    intents = tuple(i for i in analysis.intents if i.name != "buying")
    if score >= nlp.analyzer.INTENT_MIN_CONFIDENCE:
        intents += (nlp.Intent("buying", score),)
    return dataclasses.replace(analysis, buying=score, intents=intents)


async def customers(service) -> dict[str, Customer]:
    """Each writer's customer row, by the writer's name in the simulator (kf customers have no name yet)."""
    async with service.sessions() as session:
        rows = (await session.execute(select(Message.sender, Customer).join(Customer, Customer.id == Message.customer_id)
                                      .where(Message.direction == "in").order_by(Message.id))).all()
    return {name: customer for sender, customer in rows for name in ("孙丽", "赵磊")
            if sender == external_id(service.sim, name)}


async def test_the_lifecycle_and_heat_follow_the_new_analysis(service, monkeypatch):
    await customer_writes(service, "孙丽", QUESTION)
    await customer_writes(service, "赵磊", ORDER)
    before = await customers(service)
    assert (before["孙丽"].lifecycle, before["赵磊"].lifecycle) == ("prospect", "interested")

    new_model(monkeypatch, buying={QUESTION: 0.9, ORDER: 0.1})  # the new model reads both the other way
    out = io.StringIO()
    assert await reindex(service.settings, since=None, out=out) == 0
    after = await customers(service)
    assert (after["孙丽"].lifecycle, after["赵磊"].lifecycle) == ("interested", "prospect")
    assert after["孙丽"].lead_score > before["孙丽"].lead_score
    assert after["赵磊"].lead_score < before["赵磊"].lead_score
    async with service.sessions() as session:
        stored = {m.text: m.analysis["buying"] for m in (await session.scalars(
            select(Message).where(Message.direction == "in"))).all()}
        reasons = (await session.scalars(select(LifecycleChange.reason).where(
            LifecycleChange.customer_id == after["赵磊"].id).order_by(LifecycleChange.id))).all()
        assert (await session.scalars(select(Ticket))).all() == []
    assert stored == {QUESTION: 0.9, ORDER: 0.1}
    assert list(reasons)[-1] == "reanalysed"
    assert "2/2 customers (100%)" in out.getvalue() and "done: 2" in out.getvalue()


async def test_a_stage_set_by_a_person_is_left_alone(service, monkeypatch):
    await customer_writes(service, "赵磊", ORDER)
    async with service.sessions() as session:  # a rep's 客户状态 赵磊 成交
        zhao = await session.get(Customer, (await customers(service))["赵磊"].id)
        await LifecycleService(session).set_by_hand(zhao, "customer", by=None, at=utcnow())
        await session.commit()
    assert (await customers(service))["赵磊"].lifecycle == "customer"
    new_model(monkeypatch, buying={ORDER: 0.1})
    await reindex(service.settings, since=None, out=io.StringIO())
    assert (await customers(service))["赵磊"].lifecycle == "customer"


async def test_a_crashed_run_resumes_after_its_last_committed_batch(service, monkeypatch):
    await customer_writes(service, "孙丽", QUESTION)
    await customer_writes(service, "赵磊", ORDER)
    ids = {c.id: name for name, c in (await customers(service)).items()}
    first_id, second_id = sorted(ids)
    second_text = QUESTION if ids[second_id] == "孙丽" else ORDER
    first_text = ORDER if second_text == QUESTION else QUESTION

    new_model(monkeypatch, buying={QUESTION: 0.9, ORDER: 0.1}, fail_on=second_text)
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="worker killed"):
        await reindex(service.settings, since=None, batch=1, out=out)
    assert "1/2 customers (50%)" in out.getvalue()
    async with service.sessions() as session:
        [run] = (await session.scalars(select(JobRun).where(JobRun.job == "nlp.reindex"))).all()
    assert run.status == "running" and '"after": %d' % first_id in run.summary

    seen = new_model(monkeypatch, buying={QUESTION: 0.9, ORDER: 0.1})
    out = io.StringIO()
    await reindex(service.settings, since=None, batch=1, out=out)
    assert seen == [second_text]  # the first customer was not analysed again
    assert "resuming after 1 done by an earlier run" in out.getvalue() and "2/2 customers (100%)" in out.getvalue()
    after = await customers(service)
    assert (after["孙丽"].lifecycle, after["赵磊"].lifecycle) == ("interested", "prospect")
    async with service.sessions() as session:
        [run] = (await session.scalars(select(JobRun).where(JobRun.job == "nlp.reindex"))).all()
        assert run.status == "done"
        assert first_text in (await session.scalars(select(Message.text).where(Message.customer_id == first_id))).all()

    seen = new_model(monkeypatch, buying={})
    out = io.StringIO()
    await reindex(service.settings, since=None, batch=1, out=out)  # a finished run is not resumed
    assert sorted(seen) == sorted([QUESTION, ORDER]) and "resuming" not in out.getvalue()


async def test_a_checkpoint_from_another_model_is_not_resumed(service, monkeypatch):
    await customer_writes(service, "孙丽", QUESTION)
    await customer_writes(service, "赵磊", ORDER)
    ids = sorted(c.id for c in (await customers(service)).values())
    second_text = QUESTION if (await customers(service))["孙丽"].id == ids[1] else ORDER
    new_model(monkeypatch, buying={}, fail_on=second_text)
    with pytest.raises(RuntimeError):
        await reindex(service.settings, since=None, batch=1, out=io.StringIO())
    monkeypatch.setattr(nlp.resources, "fingerprint", lambda: "another-model")
    seen = new_model(monkeypatch, buying={})
    out = io.StringIO()
    await reindex(service.settings, since=None, batch=1, out=out)
    assert len(seen) == 2 and "starting over (the model, rules or --since changed since)" in out.getvalue()
