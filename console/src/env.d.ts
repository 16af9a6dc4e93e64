// Vite's module types: CSS imported for its side effect, and import.meta.env.
/// <reference types="vite/client" />
