"""_login"""
