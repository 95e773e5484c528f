"""`fraudops demo`: the whole lifecycle on the local stack, told stage by stage."""
