NAME          INFEASLP
ROWS
 N  OBJ
 G  atleast
 L  atmost
COLUMNS
    x         OBJ                  1
    x         atleast              1
    x         atmost               1
    y         OBJ                  1
    y         atleast              1
    y         atmost               1
RHS
    RHS       atleast             10
    RHS       atmost               5
BOUNDS
ENDATA
