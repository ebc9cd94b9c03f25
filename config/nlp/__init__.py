"""Company-editable NLP data (user dictionary, stop words, tag/intent rules, sentiment lexicon).

A package only so the files ship with the installed project; nothing here is code.
"""
