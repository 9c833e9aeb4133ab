"""
C{python -m chat.client}.
"""

from chat.client import main

main()
