import { useEffect, useId, useRef, type ReactNode } from 'react';

/**
 * A native modal dialog (focus kept inside, Escape closes), open while mounted. `onCancel`
 * may return false to keep it open on Escape (e.g. to ask about unsaved changes first).
 * Focus goes back to where it was when the dialog closes.
 */
export function Modal({
  title,
  onClose,
  onCancel,
  wide,
  children,
  id,
}: {
  title: ReactNode;
  onClose: () => void;
  onCancel?: () => boolean;
  wide?: boolean;
  children: ReactNode;
  id?: string;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const element = dialog.current;
    const previous = document.activeElement;
    if (element && !element.open) element.showModal();
    return () => {
      if (element?.open) element.close();
      if (previous instanceof HTMLElement && previous.isConnected) previous.focus();
    };
  }, []);
  return (
    <dialog
      ref={dialog}
      id={id}
      className={`dialog files-dialog${wide ? ' dialog-wide' : ''}`}
      aria-labelledby={titleId}
      onCancel={(event) => {
        event.preventDefault();
        if (!onCancel || onCancel()) onClose();
      }}
    >
      <h2 id={titleId}>{title}</h2>
      {children}
    </dialog>
  );
}
