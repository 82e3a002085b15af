// placer-dryrun: exact per-device memory accounting of a llama.cpp launch without loading weights.
//
// Reads one configuration per stdin line: "<tag> <llama.cpp flags…>" (same flags as llama-completion:
// -m -c -ub -b -ctk -ctv -fa -ngl -ts -ot -cmoe -ncmoe -np -kvu …). For each, it builds the model and
// the context with no_alloc (common/fit.cpp:common_get_device_memory_data — the path --fit uses) and
// prints one CSV row per device:
//   tag,device,free_bytes,total_bytes,model_bytes,context_bytes,compute_bytes
// The device "Host" is the CPU side. Bytes, not MiB (llama-fit-params --fit-print truncates to MiB).
// Tokens are split on whitespace; quote nothing (an -ot value must not contain spaces).
#include "arg.h"
#include "common.h"
#include "fit.h"
#include "llama.h"

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static void print_rows(const std::string & tag, const char * path, common_params & params) {
    auto mparams = common_model_params_to_llama(params);
    auto cparams = common_context_params_to_llama(params);
    std::vector<ggml_backend_dev_t> devs;
    uint32_t ngl = 0, nct = 0, nex = 0;
    try {
        auto dmd = common_get_device_memory_data(path, &mparams, &cparams, devs, ngl, nct, nex, GGML_LOG_LEVEL_ERROR);
        for (size_t i = 0; i < dmd.size(); i++) {
            const char * name = i < devs.size() ? ggml_backend_dev_name(devs[i]) : "Host";
            printf("%s,%s,%lld,%lld,%zu,%zu,%zu\n", tag.c_str(), name, (long long) dmd[i].free,
                   (long long) dmd[i].total, dmd[i].model, dmd[i].context, dmd[i].compute);
        }
    } catch (const std::exception & e) {
        printf("%s,ERROR,0,0,0,0,0\n", tag.c_str());
        fprintf(stderr, "%s: %s\n", tag.c_str(), e.what());
    }
    fflush(stdout);
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
