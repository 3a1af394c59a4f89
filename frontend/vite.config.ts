import { readFileSync } from "node:fs";

import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

import { aiStudioFiles } from "./aistudio/plugin.ts";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { version: string };

// `vite build` makes the app the gateway serves at /executor/ (frontend/dist);
// `vite build --mode aistudio` makes the files to paste into an AI Studio Build app.
export default defineConfig(({ mode }) => {
  const aiStudio = mode === "aistudio";
  return {
    // Relative asset URLs: the same build works at /executor/ and under any other path.
    base: "./",
    plugins: [react(), ...(aiStudio ? [aiStudioFiles({ version })] : [])],
    define: { __APP_VERSION__: JSON.stringify(version) },
    build: aiStudio
      ? {
          outDir: "dist-aistudio",
          emptyOutDir: true,
          // One module with React inside, pasted by hand: minified, it is 250 kB instead of 620 kB.
          modulePreload: false,
          cssCodeSplit: false,
        }
      : { outDir: "dist", emptyOutDir: true },
    test: {
      include: ["tests/**/*.test.ts"],
      environment: "node",
    },
  };
});
