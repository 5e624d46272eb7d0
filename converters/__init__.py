"""edgeav.converters"""
