NAME          ASSIGN
ROWS
 N  OBJ
 E  w0
 E  w1
 E  w2
 E  w3
 E  w4
 E  t0
 E  t1
 E  t2
 E  t3
 E  t4
COLUMNS
    MARKER0     'MARKER'                 'INTORG'
    x0_0      OBJ                  9
    x0_0      w0                   1
    x0_0      t0                   1
    x0_1      OBJ                  2
    x0_1      w0                   1
    x0_1      t1                   1
    x0_2      OBJ                  7
    x0_2      w0                   1
    x0_2      t2                   1
    x0_3      OBJ                  8
    x0_3      w0                   1
    x0_3      t3                   1
    x0_4      OBJ                  6
    x0_4      w0                   1
    x0_4      t4                   1
    x1_0      OBJ                  6
    x1_0      w1                   1
    x1_0      t0                   1
    x1_1      OBJ                  4
    x1_1      w1                   1
    x1_1      t1                   1
    x1_2      OBJ                  3
    x1_2      w1                   1
    x1_2      t2                   1
    x1_3      OBJ                  7
    x1_3      w1                   1
    x1_3      t3                   1
    x1_4      OBJ                  5
    x1_4      w1                   1
    x1_4      t4                   1
    x2_0      OBJ                  5
    x2_0      w2                   1
    x2_0      t0                   1
    x2_1      OBJ                  8
    x2_1      w2                   1
    x2_1      t1                   1
    x2_2      OBJ                  1
    x2_2      w2                   1
    x2_2      t2                   1
    x2_3      OBJ                  8
    x2_3      w2                   1
    x2_3      t3                   1
    x2_4      OBJ                  9
    x2_4      w2                   1
    x2_4      t4                   1
    x3_0      OBJ                  7
    x3_0      w3                   1
    x3_0      t0                   1
    x3_1      OBJ                  6
    x3_1      w3                   1
    x3_1      t1                   1
    x3_2      OBJ                  9
    x3_2      w3                   1
    x3_2      t2                   1
    x3_3      OBJ                  4
    x3_3      w3                   1
    x3_3      t3                   1
    x3_4      OBJ                  3
    x3_4      w3                   1
    x3_4      t4                   1
    x4_0      OBJ                  2
    x4_0      w4                   1
    x4_0      t0                   1
    x4_1      OBJ                  5
    x4_1      w4                   1
    x4_1      t1                   1
    x4_2      OBJ                  6
    x4_2      w4                   1
    x4_2      t2                   1
    x4_3      OBJ                  3
    x4_3      w4                   1
    x4_3      t3                   1
    x4_4      OBJ                  8
    x4_4      w4                   1
    x4_4      t4                   1
    MARKER1     'MARKER'                 'INTEND'
RHS
    RHS       w0                   1
    RHS       w1                   1
    RHS       w2                   1
    RHS       w3                   1
    RHS       w4                   1
    RHS       t0                   1
    RHS       t1                   1
    RHS       t2                   1
    RHS       t3                   1
    RHS       t4                   1
BOUNDS
 LO BND       x0_0                 0
 UP BND       x0_0                 1
 LO BND       x0_1                 0
 UP BND       x0_1                 1
 LO BND       x0_2                 0
 UP BND       x0_2                 1
 LO BND       x0_3                 0
 UP BND       x0_3                 1
 LO BND       x0_4                 0
 UP BND       x0_4                 1
 LO BND       x1_0                 0
 UP BND       x1_0                 1
 LO BND       x1_1                 0
 UP BND       x1_1                 1
 LO BND       x1_2                 0
 UP BND       x1_2                 1
 LO BND       x1_3                 0
 UP BND       x1_3                 1
 LO BND       x1_4                 0
 UP BND       x1_4                 1
 LO BND       x2_0                 0
 UP BND       x2_0                 1
 LO BND       x2_1                 0
 UP BND       x2_1                 1
 LO BND       x2_2                 0
 UP BND       x2_2                 1
 LO BND       x2_3                 0
 UP BND       x2_3                 1
 LO BND       x2_4                 0
 UP BND       x2_4                 1
 LO BND       x3_0                 0
 UP BND       x3_0                 1
 LO BND       x3_1                 0
 UP BND       x3_1                 1
 LO BND       x3_2                 0
 UP BND       x3_2                 1
 LO BND       x3_3                 0
 UP BND       x3_3                 1
 LO BND       x3_4                 0
 UP BND       x3_4                 1
 LO BND       x4_0                 0
 UP BND       x4_0                 1
 LO BND       x4_1                 0
 UP BND       x4_1                 1
 LO BND       x4_2                 0
 UP BND       x4_2                 1
 LO BND       x4_3                 0
 UP BND       x4_3                 1
 LO BND       x4_4                 0
 UP BND       x4_4                 1
ENDATA
