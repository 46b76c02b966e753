"""_cache"""
