"""Herald's domain: accounts, their events and the use cases over them.

This package imports the standard library only; its ports are protocols that
``infra`` implements.
"""
