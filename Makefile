# pipesim: one plain Makefile. `make` builds bin/psim; `make test`, `make bench`, `make asan`.
# Our code builds with -Werror; the CUDA backend builds only when nvcc is found (below).

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN     = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
INC      = -I.  # every include names its path from the root: "sim/model/cost.h"
LDLIBS   = -linih -lsqlite3 -ljansson -lm
BLAS     = -lopenblas -pthread
BUILD   ?= build
BIN     ?= bin

TOOLS    = psim pplan pexec pcompare pcalibrate pexport
# libpipesim: the simulator's parts (sim/*/) and the store (traces/); the mains are sim/cli/.
LIB_SRC  = $(sort $(filter-out sim/cli/%, $(wildcard sim/*/*.c)) $(wildcard traces/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
# libpipexec: the executor (exec/: the core and the CPU backends) and the CPU twin (kernels/).
EXEC_SRC = $(sort $(filter-out exec/cuda.c, $(wildcard exec/*.c)))
KERN_SRC = $(sort $(wildcard kernels/*.c) $(EXEC_SRC))
KERN_OBJ = $(KERN_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(sort $(wildcard tests/test_*.c))
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
DEPS     = $(LIB_OBJ:.o=.d) $(KERN_OBJ:.o=.d) $(TOOLS:%=$(BUILD)/sim/cli/%.d)

.PHONY: all test bench asan run clean fuzz docs
all: $(TOOLS:%=$(BIN)/%) $(BIN)/pplot

# The CUDA backend (kernels/layer_cuda.cu, exec/cuda.c) when nvcc is found: pexec and the
# tests then link cudart, cuBLAS and NCCL (never libcuda: the driver is reached at run time,
# so the binaries start on machines without one) with an rpath to CUDA_HOME's libraries.
# Device code is for sm_90 (H100/H200) only, to keep CI's compile short; add arches with e.g.
#   make CUDA_ARCH="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90"
# (sm_100 for B200). Without nvcc everything else builds and --backend cuda says why not.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(shell if [ -x $(CUDA_HOME)/bin/nvcc ]; then echo $(CUDA_HOME)/bin/nvcc; else command -v nvcc 2>/dev/null; fi)
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90
ifneq ($(NVCC),)
CUDA_REAL  = $(realpath $(CUDA_HOME))
CUDA_DEF   = -DPIPESIM_CUDA
CUDA_INC   = -isystem $(CUDA_HOME)/include
CUDA_LIBS  = -L$(CUDA_HOME)/lib -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_REAL)/lib \
             -Wl,-rpath,$(CUDA_REAL)/lib64 -lnccl -lcublas -lcudart -lstdc++ -ldl -lrt
CUDA_LIB   = $(BUILD)/libpipecuda.a
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(INC) $(CUDA_DEF) -MMD -MP -c $< -o $@

ifneq ($(NVCC),)
$(BUILD)/exec/cuda.o: exec/cuda.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(INC) $(CUDA_DEF) $(CUDA_INC) -MMD -MP -c $< -o $@

$(BUILD)/kernels/layer_cuda.o: kernels/layer_cuda.cu kernels/layer_cuda.h sim/model/layer_ops.h \
                               kernels/layer.h
	@mkdir -p $(dir $@)
	$(NVCC) -O2 -std=c++17 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Werror $(INC) -c $< -o $@

$(CUDA_LIB): $(BUILD)/kernels/layer_cuda.o $(BUILD)/exec/cuda.o
	@rm -f $@
	ar rcs $@ $^
DEPS += $(BUILD)/exec/cuda.d
endif

$(BUILD)/libpipesim.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The executor's parts (kernels/, exec/): they need OpenBLAS and threads, psim does not.
$(BUILD)/libpipexec.a: $(KERN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/psim: $(BUILD)/sim/cli/psim.o $(BUILD)/libpipesim.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# pplan: the configuration search (sim/search/), every point through psim's run path.
$(BIN)/pplan: $(BUILD)/sim/cli/pplan.o $(BUILD)/libpipesim.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BIN)/pcompare: $(BUILD)/sim/cli/pcompare.o $(BUILD)/libpipesim.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BIN)/pcalibrate: $(BUILD)/sim/cli/pcalibrate.o $(BUILD)/libpipesim.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# pplot is the shell driver of the gnuplot figures in plots/; bin/ links to it.
$(BIN)/pplot: plots/pplot
	@mkdir -p $(BIN)
	ln -sf $(CURDIR)/plots/pplot $@

$(BIN)/pexport: $(BUILD)/sim/cli/pexport.o $(BUILD)/libpipesim.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# pexec with MPI ranks when mpicc is there (Open MPI from Debian), else threads only.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
ifneq ($(MPICC),)
$(BUILD)/mpi/%.o: %.c
	@mkdir -p $(dir $@)
	$(MPICC) $(WARN) $(CFLAGS) $(INC) $(CUDA_DEF) $(CUDA_INC) -DPIPESIM_MPI -MMD -MP -c $< -o $@

# pexec's executor compiled with MPI (the ranks' backends); under mpirun the CUDA backend runs
# one rank per GPU (NCCL bootstrapped over MPI)
MPI_EXEC = $(EXEC_SRC:%.c=$(BUILD)/mpi/%.o)
ifneq ($(NVCC),)
MPI_EXEC += $(BUILD)/mpi/exec/cuda.o $(BUILD)/kernels/layer_cuda.o
endif
DEPS += $(MPI_EXEC:.o=.d) $(BUILD)/mpi/sim/cli/pexec.d

$(BIN)/pexec: $(BUILD)/mpi/sim/cli/pexec.o $(MPI_EXEC) $(BUILD)/libpipexec.a $(BUILD)/libpipesim.a
	@mkdir -p $(BIN)
	$(MPICC) $(CFLAGS) $^ $(LDLIBS) $(BLAS) $(CUDA_LIBS) -o $@
else
$(BIN)/pexec: $(BUILD)/sim/cli/pexec.o $(CUDA_LIB) $(BUILD)/libpipexec.a $(BUILD)/libpipesim.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $^ $(LDLIBS) $(BLAS) $(CUDA_LIBS) -o $@
endif

$(BUILD)/tests/%: tests/%.c tests/cost_fixture.h tests/sim_fixture.h tests/priced_fixture.h $(CUDA_LIB) $(BUILD)/libpipexec.a \
                  $(BUILD)/libpipesim.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(INC) $(CUDA_DEF) $(CUDA_INC) -Itests $< $(CUDA_LIB) \
	    $(BUILD)/libpipexec.a $(BUILD)/libpipesim.a $(LDLIBS) $(BLAS) $(CUDA_LIBS) -lcmocka -o $@

# The CUDA stand-in (tests/cudastub/): the backend's own code, exec/cuda.c, compiled against
# the stand-in's CUDA, cuBLAS and NCCL headers and linked with its CPU library and layer, into
# a test binary only (never bin/pexec), with or without nvcc; `make test` runs it.
STUB_DIR  = $(BUILD)/standin
STUB_INC  = -Itests/cudastub
STUB_OBJ  = $(STUB_DIR)/exec/cuda.o $(STUB_DIR)/cudastub.o $(STUB_DIR)/layer_stub.o
STUB_HDR  = $(wildcard tests/cudastub/*.h)
# (at -O0 as well as the build's -O: gcc's format-truncation checks differ by level, and a
# -O0 debug build of the backend must compile too)
$(STUB_DIR)/exec/cuda.o: exec/cuda.c exec/cuda.h $(STUB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -O0 $(INC) -DPIPESIM_CUDA $(STUB_INC) -c $< -o $@.O0.o && rm -f $@.O0.o
	$(CC) $(WARN) $(CFLAGS) $(INC) -DPIPESIM_CUDA $(STUB_INC) -c $< -o $@
$(STUB_DIR)/%.o: tests/cudastub/%.c $(STUB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(INC) -DPIPESIM_CUDA $(STUB_INC) -c $< -o $@
$(BUILD)/tests/test_cuda_standin: tests/cudastub/test_standin.c $(STUB_OBJ) $(STUB_HDR) \
                                  $(BUILD)/libpipexec.a $(BUILD)/libpipesim.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(INC) -DPIPESIM_CUDA $(STUB_INC) $< $(STUB_OBJ) \
	    $(BUILD)/libpipexec.a $(BUILD)/libpipesim.a $(LDLIBS) $(BLAS) -lcmocka -o $@
TEST_BIN += $(BUILD)/tests/test_cuda_standin
# pexec itself on the stand-in (pexec --backend cuda without a GPU), for the CLI tests and
# traces/gpu_validate.sh's dry run; a test binary, never installed.
$(BUILD)/tests/pexec_standin: sim/cli/pexec.c $(STUB_OBJ) $(STUB_HDR) $(BUILD)/libpipexec.a \
                              $(BUILD)/libpipesim.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(INC) -DPIPESIM_CUDA $(STUB_INC) $< $(STUB_OBJ) \
	    $(BUILD)/libpipexec.a $(BUILD)/libpipesim.a $(LDLIBS) $(BLAS) -o $@

# Unit tests (cmocka, one file per module) and the CLI tests; ends with "N passed, N failed".
test: all $(TEST_BIN) $(BUILD)/tests/pexec_standin
	@PEXEC_STANDIN=$(BUILD)/tests/pexec_standin sh tests/run.sh $(BUILD)/tests $(BIN)/psim

$(BUILD)/bench_engine: tests/bench_engine.c $(BUILD)/libpipesim.a
	$(CC) $(WARN) $(CFLAGS) $(INC) $< $(BUILD)/libpipesim.a $(LDLIBS) -o $@

ifneq ($(NVCC),)
BENCH_CUDA = $(BUILD)/bench_cuda
$(BUILD)/bench_cuda: tests/bench_cuda.c $(CUDA_LIB) $(BUILD)/libpipexec.a $(BUILD)/libpipesim.a
	$(CC) $(WARN) $(CFLAGS) $(INC) $(CUDA_DEF) $(CUDA_INC) $< $(CUDA_LIB) $(BUILD)/libpipexec.a \
	    $(BUILD)/libpipesim.a $(LDLIBS) $(BLAS) $(CUDA_LIBS) -o $@
endif

# make bench: the engine's speed; with the CUDA backend also the layer's ops on the GPU
# (bench_cuda says it skipped when no GPU is visible); then the config search's speed: GPT-3
# 13B on 64 H100s, a global batch of 1024 samples (the points, the wall time (pplan's line on
# stderr) and the best three).
bench: $(BUILD)/bench_engine $(BENCH_CUDA) $(BIN)/pplan
	@$(BUILD)/bench_engine
	@$(if $(BENCH_CUDA),$(BENCH_CUDA))
	@echo "# pplan --gpus 64 --global-batch 1024 scenarios/gpt13b.scn (every core):"
	@$(BIN)/pplan --no-db --top 3 --gpus 64 --global-batch 1024 scenarios/gpt13b.scn \
	    > $(BUILD)/bench_pplan.txt
	@sed -n '2,7p' $(BUILD)/bench_pplan.txt
	@echo "# pplan --gpus 16384 --global-batch 2048 scenarios/llama3-405b.scn (every core):"
	@$(BIN)/pplan --no-db --top 3 --gpus 16384 --global-batch 2048 scenarios/llama3-405b.scn \
	    > $(BUILD)/bench_pplan405.txt
	@sed -n '2,7p' $(BUILD)/bench_pplan405.txt

# The whole suite under AddressSanitizer and UBSan, in a separate build tree.
asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin OPT=-O1 CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    test

# Fuzzing (libFuzzer, clang): the scenario, schedule-file and config.json parsers with ASan and UBSan,
# FUZZ_SECONDS each, starting from the corpus in tests/fuzz/ (copied, so runs add nothing to
# the tree). A crash leaves its input in build-fuzz/ and fails the target.
CLANG ?= clang
FUZZ_SECONDS ?= 30
FUZZ_FLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined \
             -fno-sanitize-recover=all $(INC)
fuzz:
	@command -v $(CLANG) >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 1; }
	@mkdir -p build-fuzz
	for t in scenario schedule hf; do \
	    $(CLANG) $(FUZZ_FLAGS) tests/fuzz_$$t.c $(LIB_SRC) $(LDLIBS) -o build-fuzz/fuzz_$$t || exit 1; \
	    rm -rf build-fuzz/corpus-$$t && cp -r tests/fuzz/$$t build-fuzz/corpus-$$t; \
	    (cd build-fuzz && ./fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	        -print_final_stats=1 corpus-$$t) || exit 1; \
	done

# The main job: simulate GPT-3 13B on 8 H100s, store it, draw its timeline and memory, then
# sweep micro-batches x schedules and draw the bubble rates.
run: all
	$(BIN)/psim scenarios/gpt13b.scn
	$(BIN)/pplot timeline pipesim.db plots/out latest
	$(BIN)/pplot memory pipesim.db plots/out latest
	$(BIN)/psim --quiet --sweep batch.micro_batches=8,16,32,64,128 \
	    --sweep pipeline.schedule=gpipe,1f1b,zb-h1,zb-h2 scenarios/gpt13b.scn
	$(BIN)/pplot bubble pipesim.db plots/out latest

# The README's figures, docs/*.png, from the shipped scenarios (plots/docs.sh; docs/figures.txt
# lists each with the hash of its data, which a test recomputes).
docs: all
	sh plots/docs.sh docs

clean:
	rm -rf build build-asan build-fuzz bin

-include $(DEPS)
