"""Modules that experiment scripts share; not commands themselves."""
