/* empty.c: the translation unit of a module that has no sources yet (see
 * dcr_module_sources in the top CMakeLists.txt). */
typedef int dcr__empty_translation_unit;
