/** The demo's name and mark (sidebar, sign-in page). */
export function Brand() {
  return (
    <div className="brand">
      <span className="brand-mark" aria-hidden="true">
        ◆
      </span>
      <span>
        aisdk-bridge <span className="brand-sub">demo</span>
      </span>
    </div>
  );
}
