"""The hls4ml backend: conversion, custom layers, weight sharing, the g++ testbench, the C
simulation and the vendor HLS synthesis driver."""
