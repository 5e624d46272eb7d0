"""edgeav.benchmarks"""
