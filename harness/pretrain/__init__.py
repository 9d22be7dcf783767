"""Stand-ins for the pretrained parts the methods start from (``signbench pretrain``).

See docs/pretrain.md.
"""
