/* sim/run/version.h: the pipesim version, stored with every run. */
#ifndef PIPESIM_VERSION_H
#define PIPESIM_VERSION_H
#define PIPESIM_VERSION "0.1.0"
#endif
