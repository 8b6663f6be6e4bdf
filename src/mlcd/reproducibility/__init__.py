"""Whether a reproduced pipeline is the committed one: the lock check and the equivalence of outputs."""
