"""The terminal client of Flautim's JSON API: `flautim submit` and `flautim download`.

Standard library only (urllib), so the command works wherever flautim is installed.
"""
