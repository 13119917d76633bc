import { register } from 'node:module';

register('./lua-loader.mjs', import.meta.url);
