// doppel: record HTTP traffic, replay it against a new build, diff the answers.
#include <cstdlib>
#include <iostream>

#include "tools/cli.h"

#ifndef DOPPEL_VERSION
#define DOPPEL_VERSION "dev"
#endif

int main(int argc, char** argv) {
  CLI::App app{"doppel — record HTTP traffic, replay it against a new build, diff the answers"};
  app.set_version_flag("--version", std::string("doppel ") + DOPPEL_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  doppel::cli::GlobalOptions global;
  if (const char* env = std::getenv("DOPPEL_STORE"); env && *env) global.store = env;
  for (int i = 0; i < argc; ++i) global.command_line += (i ? " " : "") + std::string(argv[i]);
  app.add_option("--store", global.store,
                 "store directory (default ./doppel-data, or $DOPPEL_STORE)");

  doppel::cli::Runner run;
  doppel::cli::AddStoreCommands(app, global, &run);
  doppel::cli::AddRecordCommand(app, global, &run);
  doppel::cli::AddReplayCommands(app, global, &run);
  doppel::cli::AddNoiseCommands(app, global, &run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; real usage errors exit 2 with CLI11's message.
    int code = app.exit(e);
    return code == 0 ? 0 : doppel::cli::kExitError;
  }
  if (!run) {
    std::cerr << app.help();
    return doppel::cli::kExitError;
  }
  return run();
}
