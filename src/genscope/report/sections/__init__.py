"""report/sections"""
