"""Session stores: the contract in `base`, implementations in `memory` and `redis`."""
