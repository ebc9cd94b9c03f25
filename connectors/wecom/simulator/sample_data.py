"""A believable small company for demos and tests: 5 staff, 8 customers, 3 customer groups, one 微信客服 account,
and (given the company's public key) a few hours of archived rep↔customer chats.

The credentials are fixed demo values, public on purpose; never use them against real WeCom.
Phone numbers use the 1380013xxxx test range.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.wecom.simulator.chat_archive import ChatArchive
from connectors.wecom.simulator.contacts import tag_catalogue
from connectors.wecom.simulator.groups import sample_groups
from connectors.wecom.simulator.state import SimulatorState

DEMO_CORP_ID = "wwdemo0000000001"
DEMO_AGENT_ID = 1000002
DEMO_SECRET = "demo-secret-Xq3vN8rT2mK5pL9wZ4yB7cD1fG6hJ0sA"
DEMO_CALLBACK_TOKEN = "demoCallbackToken2024"
DEMO_ENCODING_AES_KEY = "U0NSTSBkZW1vIGtleSBmb3IgdGhlIHNpbXVsYXRvciE"  # 43 chars, decodes to 32 bytes
DEMO_OPEN_KFID = "wkDemo00000000000000000000000001"
DEMO_ARCHIVE_SECRET = "demo-archive-secret-Rw8tY3uV6nQ1zX4cM7bK0jH5"

DEPARTMENTS = {1: "星河科技", 2: "销售部", 3: "客户服务部", 4: "行政部"}
DEPARTMENT_LEADERS = {2: ["liuyang"], 3: ["liuyang"]}


def _staff(userid: str, name: str, department: list[int], position: str, mobile: str,
           gender: str, *, is_leader: bool = False) -> dict[str, Any]:
    return {
        "userid": userid,
        "name": name,
        "department": department,
        "order": [0] * len(department),
        "position": position,
        "mobile": mobile,
        "gender": gender,
        "email": f"{userid}@xinghe-demo.cn",
        "is_leader_in_dept": [1 if is_leader else 0] * len(department),
        "direct_leader": [] if is_leader else ["liuyang"],
        "avatar": "",
        "telephone": "",
        "alias": "",
        "status": 1,
        "main_department": department[0],
    }


def _tag(group: str, name: str, tag_id: str) -> dict[str, Any]:
    return {"group_name": group, "tag_name": name, "tag_id": tag_id, "type": 1}


def _customer(external_userid: str, name: str, gender: int, corp_name: str, position: str,
              follower: str, remark: str, description: str, mobiles: list[str],
              tags: list[dict[str, Any]], createtime: int, state: str = "") -> dict[str, Any]:
    return {
        "external_contact": {
            "external_userid": external_userid,
            "name": name,
            "position": position,
            "avatar": "",
            "corp_name": corp_name,
            "corp_full_name": corp_name,
            "type": 1,
            "gender": gender,
            "unionid": "oUnion" + external_userid[6:28],  # 28 characters like a real unionid
        },
        "follow_user": [{
            "userid": follower,
            "remark": remark,
            "description": description,
            "createtime": createtime,
            "tags": tags,
            "remark_corp_name": corp_name,
            "remark_mobiles": mobiles,
            "oper_userid": follower,
            "add_way": 1,
            "state": state,
        }],
    }


VIP = _tag("客户等级", "重要客户", "etDemoVip0001")
NORMAL = _tag("客户等级", "普通客户", "etDemoNormal01")
PROSPECT = _tag("客户阶段", "意向客户", "etDemoStage001")
QUOTING = _tag("客户阶段", "报价谈判", "etDemoStage002")
SIGNED = _tag("客户阶段", "已成交", "etDemoStage003")


def _sample_staff() -> dict[str, dict[str, Any]]:
    people = [
        _staff("zhangwei", "张伟", [2], "销售代表", "13800130001", "1"),
        _staff("lina", "李娜", [2], "销售代表", "13800130002", "2"),
        _staff("wangfang", "王芳", [3], "客服专员", "13800130003", "2"),
        _staff("liuyang", "刘洋", [2, 3], "销售总监", "13800130004", "1", is_leader=True),
        _staff("chenjing", "陈静", [4], "系统管理员", "13800130005", "2"),
    ]
    return {person["userid"]: person for person in people}


def _sample_departments() -> dict[int, dict[str, Any]]:
    """department/list entries (https://developer.work.weixin.qq.com/document/path/90208); 1 is the root."""
    return {
        department_id: {"id": department_id, "name": name, "name_en": "", "parentid": 0 if department_id == 1 else 1,
                        "order": 100_000_000 - department_id, "department_leader": DEPARTMENT_LEADERS.get(department_id, [])}
        for department_id, name in DEPARTMENTS.items()
    }


def _sample_customers() -> dict[str, dict[str, Any]]:
    customers = [
        _customer("wmDemoZhaoLei0000000000000000001", "赵磊", 1, "华东精密机械有限公司", "采购经理",
                  "zhangwei", "赵总-华东精密", "生日: 1985-03-12; 偏好电话沟通", ["13800131001"],
                  [VIP, QUOTING], 1_700_000_000, state="expo2024"),
        _customer("wmDemoSunLi000000000000000000002", "孙丽", 2, "杭州云帆贸易", "总经理",
                  "zhangwei", "孙丽-云帆", "生日: 1990-07-08", ["13800131002"],
                  [NORMAL, PROSPECT], 1_701_000_000),
        _customer("wmDemoZhouJie0000000000000000003", "周杰", 1, "苏州恒达电子", "技术总监",
                  "zhangwei", "周工-恒达", "关注交期, 需要技术对接", ["13800131003"],
                  [VIP, SIGNED], 1_698_000_000),
        _customer("wmDemoWuMin000000000000000000004", "吴敏", 2, "南京绿源食品", "行政主管",
                  "lina", "吴敏-绿源", "生日: 1992-11-23; 年底集中采购", ["13800131004"],
                  [NORMAL, QUOTING], 1_702_000_000),
        _customer("wmDemoZhengHao000000000000000005", "郑浩", 1, "宁波海兴物流", "运营经理",
                  "lina", "郑浩-海兴", "", ["13800131005"], [PROSPECT], 1_703_000_000, state="website"),
        _customer("wmDemoFengXue0000000000000000006", "冯雪", 2, "上海晨光文化传媒", "市场总监",
                  "lina", "冯总-晨光", "生日: 1988-01-30", ["13800131006", "13800131106"],
                  [VIP, SIGNED], 1_695_000_000),
        _customer("wmDemoHeJun000000000000000000007", "何军", 1, "个人客户", "",
                  "wangfang", "何军-售后", "曾投诉物流延误, 已补发", ["13800131007"],
                  [NORMAL, SIGNED], 1_699_000_000),
        _customer("wmDemoLuoYan00000000000000000008", "罗燕", 2, "合肥启明教育", "校长助理",
                  "liuyang", "罗燕-启明", "生日: 1995-05-19; 由刘总直接跟进", ["13800131008"],
                  [PROSPECT], 1_704_000_000),
    ]
    return {c["external_contact"]["external_userid"]: c for c in customers}


def sample_state(**overrides: Any) -> SimulatorState:
    """A fresh demo company; keyword arguments replace any ``SimulatorState`` field."""
    fields: dict[str, Any] = {
        "corp_id": DEMO_CORP_ID,
        "agent_id": DEMO_AGENT_ID,
        "secret": DEMO_SECRET,
        "callback_token": DEMO_CALLBACK_TOKEN,
        "encoding_aes_key": DEMO_ENCODING_AES_KEY,
        "staff": _sample_staff(),
        "departments": _sample_departments(),
        "external_contacts": _sample_customers(),
        "corp_tag_groups": tag_catalogue([VIP, NORMAL, PROSPECT, QUOTING, SIGNED]),
        "kf_accounts": {DEMO_OPEN_KFID: {"open_kfid": DEMO_OPEN_KFID, "name": "星河科技客服", "avatar": ""}},
        "group_chats": sample_groups(),
    }
    fields.update(overrides)
    return SimulatorState(**fields)


def sample_chat_archive(public_key: rsa.RSAPublicKey, *, secret: str = DEMO_ARCHIVE_SECRET,
                        now: float | None = None) -> ChatArchive:
    """The last three hours of rep↔customer chats: a quote follow-up, a friendly prospect, a
    complaint about a late delivery, and a customer group chat with a contract file."""
    ids = {c["external_contact"]["name"]: eid for eid, c in _sample_customers().items()}
    zhao, sun, wu, feng = ids["赵磊"], ids["孙丽"], ids["吴敏"], ids["冯雪"]
    room = "wrDemoChenGuang0000000000000001"

    def media(**fields: Any) -> dict[str, Any]:
        return {"md5sum": secrets.token_hex(16), "sdkfileid": base64.b64encode(os.urandom(48)).decode(), **fields}

    archive = ChatArchive(secret=secret, public_keys={1: public_key})
    start_ms = int(((now if now is not None else time.time()) - 3 * 3600) * 1000)
    for minute, sender, to, msgtype, content, roomid in (
        (0, "zhangwei", [zhao], "text", {"content": "赵总您好，上次您要的数控机床报价单我整理好了，今天发您邮箱。"}, ""),
        (3, zhao, ["zhangwei"], "text", {"content": "好的，麻烦尽快，我们这周要定下来。"}, ""),
        (4, zhao, ["zhangwei"], "image", media(filesize=183_422), ""),
        (6, "zhangwei", [zhao], "text", {"content": "收到，下午三点前发您。"}, ""),
        (20, "zhangwei", [sun], "text", {"content": "孙总，新品目录已经发您了，有兴趣的话我们约个时间详细聊聊。"}, ""),
        (35, sun, ["zhangwei"], "text", {"content": "看了，挺不错的，下周二下午有空。"}, ""),
        (60, wu, ["lina"], "text", {"content": "上周订的那批货到现在还没到，客服电话也打不通，太失望了，再不处理我就去12315投诉！"}, ""),
        (62, "lina", [wu], "text", {"content": "吴主管非常抱歉，我马上帮您查物流，今天一定给您答复。"}, ""),
        (90, feng, ["lina", "liuyang"], "text", {"content": "活动方案我们内部过了，整体满意，合同这周可以签。"}, room),
        (92, "lina", [feng, "liuyang"], "file", media(filename="晨光合作合同.pdf", fileext="pdf", filesize=524_288), room),
    ):
        archive.add(sender, to, msgtype, content, msgtime_ms=start_ms + minute * 60_000, roomid=roomid)
    return archive
