"""Syncs that bring a company's WeCom into the CRM (directory, existing customers, …): each pages
through WeCom's API, keeps its cursor in the database, and resumes where a killed run stopped."""
