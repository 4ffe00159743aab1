{ pkgs }: {
  deps = [
    pkgs.python311
    pkgs.python311Packages.pip
    # RDKit's wheels need the C++ runtime, zlib and FreeType/X libraries for drawing; torch needs libgomp (OpenMP).
    pkgs.stdenv.cc.cc.lib
    pkgs.zlib
    pkgs.freetype
    pkgs.libpng
    pkgs.xorg.libX11
    pkgs.xorg.libXrender
    pkgs.xorg.libXext
    pkgs.cairo
    pkgs.glib
    pkgs.gcc
  ];
  env = {
    LD_LIBRARY_PATH = pkgs.lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib pkgs.zlib pkgs.freetype pkgs.libpng pkgs.xorg.libX11 pkgs.xorg.libXrender pkgs.xorg.libXext pkgs.glib ];
  };
}
