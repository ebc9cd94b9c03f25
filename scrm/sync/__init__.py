"""Full syncs of what WeCom holds (directory, existing customers, customer groups): each resumable,
run on demand (`scrm sync …`) and nightly by the scheduler."""
