# Turns a text file into a C++ source that defines `const char* const NAME` with its contents, so
# binaries carry their JSON Schemas and need no install path. Run as:
#   cmake -DINPUT=... -DOUTPUT=... -DNAME=... -P EmbedText.cmake
file(READ ${INPUT} content)
set(delim "shardplan_embed")
file(WRITE ${OUTPUT}.tmp "// Generated from ${INPUT} by cmake/EmbedText.cmake; do not edit.\n"
  "namespace shardplan {\nextern const char* const ${NAME};\n"
  "const char* const ${NAME} = R\"${delim}(${content})${delim}\";\n}  // namespace shardplan\n")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUTPUT}.tmp)
