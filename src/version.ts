/** The adaptor's own version; `--version` adds the version of the libzmq it runs on. */
export const ADAPTOR_VERSION = "1.0.0";

/** The program's name, as operators type it and as it prefixes error lines. */
export const PROGRAM = "adaptor";
