"""The words and patterns of Chinese time phrases, one table or regex per phrase family.

Kept apart from the reader so a newcomer adding a phrase finds every pattern in one place. Every
pattern is matched at a position (`re.match(text, pos)`), never searched.
"""

from __future__ import annotations

import re
from datetime import time

from bot.timeparse.numbers import DECIMAL, NUM

DEFAULT_TIME = time(9, 0)  # a day with no clock time: the start of the working day
WEEKEND_TIME = time(10, 0)  # 周末 with no clock time: not at 09:00 on a Saturday

# Separators a rep puts between the parts of one phrase: 明天 下午 3点, 周五的下午
GAP = re.compile(r"[ \t,，的]*")

# --- relative offsets: 两个半小时后, 四十分钟以后, 三刻钟后, 3天内, 5个工作日后, 过两天 -------------
RELATIVE = re.compile(
    rf"(?P<over>再过|过)?\s*(?P<amount>{DECIMAL}|半|几)\s*(?P<ge>个)?\s*(?P<half1>半)?\s*(?P<more1>多)?\s*"
    r"(?P<unit>分钟|小时|钟头|个钟|刻钟|工作日|天|日|周|星期|礼拜|月|年)"
    r"\s*(?P<half2>半)?\s*(?P<more2>多)?\s*(?P<suffix>以后|之后|过后|后|以内|之内|内|以前|之前|前)?")

# --- named days ----------------------------------------------------------------------------
DAY_WORDS = {"今天": 0, "今日": 0, "今儿": 0, "今早": 0, "今晨": 0, "今晚": 0, "今夜": 0, "当天": 0,
             "明天": 1, "明日": 1, "明儿": 1, "明早": 1, "明晨": 1, "明晚": 1, "明夜": 1,
             "后天": 2, "后日": 2, "后儿": 2, "大后天": 3, "大大后天": 4,
             "昨天": -1, "昨日": -1, "昨晚": -1, "前天": -2, "大前天": -3}
DAY_WORD_PERIOD = {"今早": "早上", "今晨": "早上", "今晚": "晚上", "今夜": "晚上", "明早": "早上", "明晨": "早上",
                   "明晚": "晚上", "明夜": "晚上", "昨晚": "晚上"}
DAY_WORD = re.compile("|".join(sorted(DAY_WORDS, key=len, reverse=True)))

# 这两天 (today or tomorrow: tomorrow), 过两天 / 过几天 (in two / a few days)
VAGUE_DAYS = re.compile(r"(?P<which>这两天|这几天|近两天|过两天|过几天|过些天|过段时间|改天|回头|最近|近期|以后|将来)")
VAGUE_DAY_OFFSET = {"这两天": 1, "近两天": 1, "过两天": 2, "过几天": 3}

# --- weeks ---------------------------------------------------------------------------------
WEEK = re.compile(r"(?P<which>下下个?|下个?|这个?|本|今|上上个?|上个?)?\s*(?:周|星期|礼拜|週|禮拜)"
                  r"(?P<day>[一二三四五六日天末1-7])?(?P<or_day>(?:[、到至-][一二三四五六日天1-7]|[一二三四五六日天])(?![\d:：点时号日月个天周分]))?(?!年|岁|期)")
WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
            "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
WEEK_THEN_DAY = re.compile(r"[ 的]*(?:周|星期|礼拜)(?P<day>[一二三四五六日天1-7])")

# --- calendar dates ------------------------------------------------------------------------
_YEAR = r"(?:(?P<year>\d{4}|\d{2}|[零〇○一二三四五六七八九]{2,4})\s*年|(?P<year_word>今年|明年|后年|去年|前年))"
_NOT_A_DAY_NOUN = r"(?!\s*(?:楼|线|店|门|库|仓|车间|房|桌|位|机|床|窗口|包厢|厅|馆|院|键|柜|台|箱|货架|档|码|单|件|款|型))"
CALENDAR_DATE = re.compile(
    rf"(?:{_YEAR}\s*)?(?P<month>{NUM})\s*月份?\s*(?P<day>{NUM})\s*(?:(?P<mark>[日号])|(?![日号点时分个天小月年\d:：]))"
    + _NOT_A_DAY_NOUN)
NUMERIC_DATE = re.compile(r"(?P<year>\d{4})\s*[-/.年]\s*(?P<month>\d{1,2})\s*[-/.月]\s*(?P<day>\d{1,2})\s*(?:[日号]|(?![日号\d.]))")
SHORT_DATE = re.compile(r"(?P<month>\d{1,2})[/.·](?P<day>\d{1,2})(?![\d.%]|\s*(?:折|元|块|万|倍|千|个|天|小时|号|日|点|时|kg|斤|米|度|分))")
DAY_OF_MONTH = re.compile(rf"(?P<which>本月|这个?月|当月|下下个?月|下个?月|上上个?月|上个?月)?\s*(?P<day>{NUM})\s*(?P<mark>[日号])"
                          + _NOT_A_DAY_NOUN)

# --- lunar dates: 正月初三, 大年初三, 腊月二十三, 农历八月十五 -----------------------------------
LUNAR_MONTHS = {"正": 1, "冬": 11, "腊": 12}
LUNAR_DATE = re.compile(
    rf"(?P<marker>农历|阴历)?\s*(?:(?P<big>大年)|(?P<leap>闰)?(?P<month>正|冬|腊|{NUM})\s*月)\s*"
    rf"(?P<day>初\s*{NUM}|{NUM})\s*(?P<mark>[日号])?")

# --- parts of months, quarters, years ------------------------------------------------------
MONTH_PART = re.compile(
    rf"(?:(?:{_YEAR})\s*)?(?:(?P<which>下下个?月|下个?月|本月|这个?月|当月|上上个?月|上个?月)|(?P<month>{NUM})\s*月份?)?\s*"
    r"(?P<part>月底|月末|月尾|月初|月中|底|末|尾|初|上旬|中旬|下旬|中)?")
QUARTER = re.compile(r"(?P<which>下个?|本|这个?|今年|明年|上个?|去年)?\s*(?:第\s*)?(?P<nth>[一二三四1-4])?\s*(?:季度|季)\s*(?P<part>末|底|初)?")
YEAR_PART = re.compile(r"(?:(?P<which>今年|明年|后年|去年|前年)\s*年?|年)(?P<part>底|末|初|终)(?!奖|总结|考核|大会|盘点)")

# --- festivals -----------------------------------------------------------------------------
FESTIVAL_NAMES = {
    "元旦": "元旦", "春节": "春节", "过年": "春节", "大年三十": "除夕", "年三十": "除夕", "除夕": "除夕",
    "元宵": "元宵", "情人节": "情人节", "三八妇女节": "妇女节", "三八节": "妇女节", "妇女节": "妇女节",
    "清明": "清明", "五一劳动节": "劳动节", "五一": "劳动节", "劳动节": "劳动节", "母亲节": "母亲节",
    "六一儿童节": "儿童节", "六一": "儿童节", "儿童节": "儿童节", "618": "618", "六一八": "618", "端午": "端午",
    "父亲节": "父亲节", "七夕": "七夕", "教师节": "教师节", "中秋": "中秋", "国庆": "国庆", "十一": "国庆",
    "重阳": "重阳", "双十一": "双十一", "双11": "双十一", "感恩节": "感恩节", "双十二": "双十二", "双12": "双十二",
    "冬至": "冬至", "平安夜": "平安夜", "圣诞": "圣诞", "腊八": "腊八",
}
FESTIVAL = re.compile(
    r"(?P<which>今年|明年|后年|去年)?\s*(?P<name>" + "|".join(sorted(FESTIVAL_NAMES, key=len, reverse=True)) + r")"
    r"(?!节?(?:礼|月饼|红包|活动|促销|福利|祝福|快乐|愉快|贺卡|海报|文案|方案|套餐|优惠|晚会|大促|礼盒|礼品|放假安排|路|街|大道|广场|小区|大厦|中学|小学|公园))"
    r"(?P<jie>节)?(?:长假|假期|小长假|当天)?(?![点时号日月个天周分\d一二三四五六七八九十])")
# 节后: after the holiday that is on or coming; 年后/年前: around 春节
HOLIDAY_WORD = re.compile(r"(?P<word>节后|节前|假期后|假后|放假后|放假前|收假后|年后|年前|过完年|开年后|开年)")

# --- times of day --------------------------------------------------------------------------
PERIODS = {"凌晨": "凌晨", "早上": "早上", "早晨": "早上", "清晨": "早上", "一早": "早上", "大早": "早上",
           "上午": "上午", "中午": "中午", "午后": "下午", "下午": "下午", "傍晚": "傍晚", "晚上": "晚上",
           "晚间": "晚上", "夜里": "夜里", "夜间": "夜里", "半夜": "夜里", "深夜": "夜里", "午夜": "夜里",
           "早": "早上", "晚": "晚上", "白天": "上午", "夜": "晚上"}
PERIOD = re.compile("|".join(sorted(PERIODS, key=len, reverse=True)) + "(?<!夜)|夜(?![班宵市景色间里])")
PERIOD_DEFAULT = {"凌晨": time(6), "早上": time(8), "上午": time(9), "中午": time(12), "下午": time(14),
                  "傍晚": time(18), "晚上": time(19)}
# When a period with no clock time is said during it, the next full hour is meant until this hour.
PERIOD_ENDS = {"凌晨": 6, "早上": 9, "上午": 12, "中午": 13, "下午": 18, "傍晚": 19, "晚上": 23}

CLOCK_COLON = re.compile(r"(?P<hour>\d{1,2})\s*[:：]\s*(?P<minute>\d{2})(?:[:：]\d{2})?(?!\d)(?:分(?!钟))?")
CLOCK_AMPM = re.compile(r"(?P<hour>\d{1,2})(?:[:：](?P<minute>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?)(?![a-z])", re.I)
CLOCK = re.compile(
    rf"(?P<hour>{NUM})\s*(?:[-~到至]\s*(?P<hour_to>{NUM})\s*)?(?P<mark>点钟|点|時|时|點)\s*"
    rf"(?:(?P<half>半)|(?P<quarter>[一1三3])\s*刻|过?\s*(?P<minute>零?\s*{NUM})\s*(?P<fen>分钟|分)?)?"
    r"\s*(?P<tail>多钟|多|整|钟|左右|前后|许|上下)?")
RANGE_TAIL = re.compile(rf"\s*(?:[-~到至]|一直到)\s*(?:{'|'.join(PERIODS)})?\s*(?:{NUM}\s*[点时]\s*(?:半|{NUM}\s*分?)?|\d{{1,2}}[:：]\d{{2}})"
                        r"(?:\s*(?:之间|中间))?")
# 下个月的今天 / 一个月后的今天: the same day of the month (week) named
SAME_DAY = re.compile(r"[ 的]*(?:今天|这一天|这天|同一天)")
# 明天这个时候: the day named, at the time it is now
THIS_TIME = re.compile(r"(?:这个时候|这时候|这个点|这个时间|同一时间|此时)")
# Said before a time and meaning nothing for it, or only that it is rough: 大概下午三点, 在明天
FILLER = re.compile(r"(?P<rough>大概|大约|约莫|约|差不多|估计|左右)?\s*(?:在|于)?\s*")
# 差一刻五点 / 五点差五分: a quarter / five minutes to five
SHORT_OF = re.compile(rf"差\s*(?:(?P<quarter>[一1三3])\s*刻|(?P<minute>{NUM})\s*分钟?)")
APPROX = re.compile(r"\s*(?:左右|前后|上下|许)")

# --- deadline and "after" suffixes ---------------------------------------------------------
BEFORE = re.compile(rf"\s*(?:之前|以前|为止|前(?!后|台|端|期|面|往|去|来|任|辈|提|景|途|线|夕|进|排|列|天|年))"
                    rf"(?!\s*{NUM}\s*(?:天|日|周|个|小时|钟头|分钟))")  # 月底前两天 moves the time: not a deadline
WITHIN = re.compile(r"\s*(?:以内|之内|内(?![容部存外行地网勤销]))")
AFTER = re.compile(r"(?:之后|以后|过后|后(?!天|日|儿))")

# What may not follow a phrase unread: the start of a time we could not read (多钟, 前后, 25点).
UNREAD_TIME = re.compile(
    r"(?:(?:之前|以前|之后|以后|以内|之内|[前后内])(?=$|[\s,，。；;!！?？]|把|将|给|再|要|提醒|联系|回访|完成|交|发|寄|打)|左右|多钟|钟头?|[点时分秒号](?![\u4e00-\u9fff]{2})|半|[一三1-3]?刻|整点"
    rf"|{NUM}\s*(?:[点时]|[號号]{_NOT_A_DAY_NOUN}|分钟|个?小时|个?钟头|个?星期|个?礼拜|个月|刻|[:：]\d)|凌晨|早上|上午|中午|下午|傍晚|晚上"
    # moments whose clock time depends on the company or the person: asked, not guessed
    r"|[上下]班|午饭|晚饭|饭后|午休|晚些|稍后|晚点|早点|[这那]个?时候"
    # words that move the time just read: 月底前两天, 国庆的前一天, 下周最后一天, 提前一天
    rf"|(?:[之以]?前|[之以]?后|提前|推迟|延后|往后|往前)\s*{NUM}\s*(?:天|日|周|个?星期|个?礼拜|个?小时|个?钟头|分钟|个月)"
    rf"|第\s*{NUM}\s*(?:天|日|周|个)|最后一天|头一天|前一天|后一天|当天晚上|那天"
    r"|期间|这段时间|那段时间)")  # 国庆期间: not one time
# 下个月最后一天 / 月底最后一天: the month's last calendar day
LAST_DAY = re.compile(r"[ 的]*最后一天")
# 国庆后第一天 / 节后第一个工作日: what 后 means for a holiday already
FIRST_AFTER = re.compile(r"[ 的]*(?:第一天|第一个工作日|头一天|第一个上班日)")

# A greeting, not a time: 周末愉快, 国庆快乐
GREETING = re.compile(r"(?:节)?(?:快乐|愉快)")
# Words after which a bare hour (三点) is a count, not a time: 有三点建议, 第三点.
COUNTED_BEFORE = set("第有这那几哪每共另")
COUNTED_AFTER = re.compile(r"(?:建议|要求|意见|原因|问题|内容|理由|看法|想法|好处|优势|不足|注意|需要|说明|补充|共识|疑问|顾虑|改进|事项|方面|要点|意思|需求)")
