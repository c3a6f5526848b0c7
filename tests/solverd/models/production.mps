NAME          PRODUCT
ROWS
 N  OBJ
 L  plant1
 L  plant2
 L  plant3
COLUMNS
    x         OBJ                 -3
    x         plant1               1
    x         plant3               3
    y         OBJ                 -5
    y         plant2               2
    y         plant3               2
RHS
    RHS       plant1               4
    RHS       plant2              12
    RHS       plant3              18
BOUNDS
ENDATA
