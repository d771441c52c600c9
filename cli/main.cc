#include "cli/app.h"

int main(int argc, char** argv) { return clusterctl::cli::Main(argc, argv); }
