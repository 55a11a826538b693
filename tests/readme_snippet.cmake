# The README's minimal example compiles: extract its ```cpp block and check it with the compiler.
file(READ ${SOURCE_DIR}/README.md readme)
string(REGEX MATCH "```cpp\n(.*)\n```" block "${readme}")
if(NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "README.md has no ```cpp block")
endif()
string(REGEX REPLACE "\n```.*" "" code "${CMAKE_MATCH_1}")
file(WRITE ${WORK_DIR}/readme_example.cpp "${code}\n")
execute_process(COMMAND ${CXX} -std=c++20 -fopenmp -fsyntax-only -I${SOURCE_DIR}/include -I${EIGEN_DIR}
                        ${WORK_DIR}/readme_example.cpp
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "README.md's example does not compile:\n${err}")
endif()
