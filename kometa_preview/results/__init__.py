"""What a job leaves: summary.json, each target's outcome, the pages (report, contact sheet, live page,
diff).
"""
