"""_oauth"""
