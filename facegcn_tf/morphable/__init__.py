"""Morphable face models (ICT Face Model Light, BFM 2009) behind one interface."""
