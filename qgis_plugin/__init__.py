"""QGIS side of LandSeg: Processing provider, algorithms, engine runner and styling.

Imports QGIS and Qt (through ``qgis.PyQt`` only); never torch, rasterio or numpy 2.
"""
