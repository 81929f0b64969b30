"""The user's tools besides render: check, find, and the badge-covering sample.
"""
