"""Syncs that pull a part of the company's WeCom into the CRM, page by page (the directory, existing
customers, customer groups).

Each runs on a fresh install's first start, on the schedule and by hand (`scrm sync …`), one
process at a time, with WeCom's failures handled by scrm.retries; a killed run resumes where it stopped.
"""
